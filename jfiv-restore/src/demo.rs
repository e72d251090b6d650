//! A small demo site for rehearsals and the `degraded_restore --demo` example: an
//! application-server tree and a SQLite database with obviously fake data, backed up to a
//! disk target. Not for production use (the demo key file uses weak KDF parameters so that it
//! opens instantly).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jfiv_backup::{
    BackupOptions, DirectorySource, DiskTarget, KdfParams, KeyFile, NoProgress, RepositoryKey,
    SqliteSource, backup,
};
use secrecy::SecretString;

use crate::{Error, Inventory, KeyMaterial, MeasureKind, Measurement, Result};

/// The passphrase of the demo key file (a demo, not a secret).
pub const DEMO_PASSPHRASE: &str = "demo passphrase, not a secret";

/// What [`build_demo_site`] made.
#[derive(Debug, Clone)]
pub struct DemoSite {
    /// The "server": `opt/jfiv` (application) and `var/lib/jfiv/jfiv.sqlite` (database).
    pub server: PathBuf,
    /// The disk target.
    pub disk_target: PathBuf,
    /// The key file.
    pub key_file: PathBuf,
}

/// Builds a demo site under `dir` and backs it up (application and database) to a disk target.
///
/// # Errors
/// I/O and backup errors.
pub async fn build_demo_site(dir: &Path) -> Result<DemoSite> {
    let server = dir.join("server");
    let app = server.join("opt/jfiv");
    let db_dir = server.join("var/lib/jfiv");
    for d in [
        app.join("conf"),
        app.join("lib"),
        app.join("reports"),
        db_dir.clone(),
    ] {
        std::fs::create_dir_all(&d).map_err(|e| Error::io("create", &d, e))?;
    }
    let write =
        |p: PathBuf, data: Vec<u8>| std::fs::write(&p, data).map_err(|e| Error::io("write", &p, e));
    write(
        app.join("conf/jfiv.properties"),
        b"db.url=jdbc:sqlite:/var/lib/jfiv/jfiv.sqlite\nport=8443\n".to_vec(),
    )?;
    write(
        app.join("conf/README"),
        b"DEMO site: all patients are fictitious.\n".to_vec(),
    )?;
    for i in 0..40u32 {
        let body: Vec<u8> = (0..(4096 + i * 997))
            .map(|j| (j.wrapping_mul(31).wrapping_add(i)) as u8)
            .collect();
        write(app.join(format!("lib/module-{i:02}.jar")), body)?;
    }
    for i in 0..20u32 {
        write(
            app.join(format!("reports/abm-{i:02}.txt")),
            format!("Rapport ABM fictif {i}\n").repeat(200).into_bytes(),
        )?;
    }
    std::os::unix::fs::symlink("conf/jfiv.properties", app.join("current.properties"))
        .map_err(|e| Error::io("create symlink", app.join("current.properties"), e))?;
    let db = db_dir.join("jfiv.sqlite");
    {
        let c = rusqlite::Connection::open(&db).map_err(|e| Error::InvalidRequest {
            reason: format!("demo database: {e}"),
        })?;
        let mut sql = String::from(
            "CREATE TABLE patients (id TEXT PRIMARY KEY, nom TEXT);
             CREATE TABLE cycles (id INTEGER PRIMARY KEY, patient TEXT, kind TEXT, day INTEGER);",
        );
        for p in 0..50 {
            sql.push_str(&format!(
                "INSERT INTO patients VALUES ('P{p:06}', 'FICTIF-{p}');"
            ));
            for k in 0..3 {
                let kind = ["IIU", "FIV", "ICSI", "TEC"][(p + k) % 4];
                sql.push_str(&format!(
                    "INSERT INTO cycles (patient, kind, day) VALUES ('P{p:06}', '{kind}', {k});"
                ));
            }
        }
        c.execute_batch(&sql).map_err(|e| Error::InvalidRequest {
            reason: format!("demo database: {e}"),
        })?;
    }
    let disk_target = dir.join("disk-target");
    let target = DiskTarget::create(&disk_target)?;
    let key = RepositoryKey::generate();
    let key_file = dir.join("repository.key");
    KeyFile::seal(
        &key,
        &SecretString::from(DEMO_PASSPHRASE),
        KdfParams::insecure_for_tests(),
    )?
    .write(&key_file)?;
    let opts = BackupOptions::default();
    let app_source = DirectorySource::new("app-server").root_as(&app, "opt/jfiv");
    backup(&app_source, &target, &key, None, &opts, &NoProgress).await?;
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
    let db_source = SqliteSource::new("jfiv-db", &db)
        .entry_name("jfiv.sqlite")
        .temp_dir(&tmp);
    backup(&db_source, &target, &key, None, &opts, &NoProgress).await?;
    Ok(DemoSite {
        server,
        disk_target,
        key_file,
    })
}

/// The inventory of a disk target whose key file is `key_file`: every snapshot, verified now
/// (a full verification), and the key file plus a paper key in the safe.
///
/// # Errors
/// The target's and the key's errors.
pub async fn disk_inventory(
    target_name: &str,
    location: &str,
    target: &Arc<DiskTarget>,
    key: &RepositoryKey,
    key_file: &Path,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Inventory> {
    let t0 = std::time::Instant::now();
    let verify =
        jfiv_backup::verify(target.as_ref(), key, &jfiv_backup::VerifyOptions::default()).await?;
    let secs = t0.elapsed().as_secs_f64();
    let mut inv = Inventory::default();
    inv.add_disk_target(
        target_name,
        location,
        target.as_ref(),
        key,
        Some((&verify, now)),
    )
    .await?;
    inv.measurements.push(Measurement {
        kind: MeasureKind::DiskVerify,
        bytes: verify.bytes_checked,
        seconds: secs,
        at: now,
    });
    inv.keys.push(KeyMaterial::KeyFile {
        path: key_file.to_path_buf(),
        available: key_file.exists(),
    });
    inv.keys.push(KeyMaterial::PaperKey {
        kept_at: "the hospital safe".into(),
    });
    Ok(inv)
}
