//! A synthetic demo site: a JFIV-like SQLite database of obviously fake patients and their
//! IIU / FIV / ICSI / TEC cycles, and an application-server tree.
//!
//! Everything is deterministic (the same size gives byte-identical data) and fake: patient
//! names are `PATIENTE-FICTIVE-0001`, partners `CONJOINT-FICTIF-0001`, birth dates and cycles
//! are computed from the index. Nothing here resembles a real person.
//!
//! The comparison helpers ([`compare_databases`], [`compare_trees`]) are what the demo and the
//! spec tests use to prove a restored server is the original one.
//!
//! ```
//! let dir = tempfile::tempdir()?;
//! let db = dir.path().join("jfiv.sqlite");
//! let summary = jfiv::demo::create_database(&db, &jfiv::demo::DemoSize::tiny())?;
//! assert_eq!(summary.row_counts["patients"], 20);
//! let copy = dir.path().join("copy.sqlite");
//! std::fs::copy(&db, &copy)?;
//! assert!(jfiv::demo::compare_databases(&db, &copy)?.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

/// Something went wrong creating or comparing demo data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// A SQLite error on `path`.
    #[error("SQLite database {}: {source}", path.display())]
    Sqlite {
        /// The database.
        path: PathBuf,
        /// The error.
        source: rusqlite::Error,
    },
    /// An I/O error on `path`.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The target already exists (the demo never overwrites).
    #[error("{} already exists: the demo does not overwrite", path.display())]
    Exists {
        /// The path.
        path: PathBuf,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DemoError + '_ {
    move |source| DemoError::Io {
        path: path.to_owned(),
        source,
    }
}

fn sql(path: &Path) -> impl FnOnce(rusqlite::Error) -> DemoError + '_ {
    move |source| DemoError::Sqlite {
        path: path.to_owned(),
        source,
    }
}

/// How big the demo data is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoSize {
    /// Number of (fake) patients.
    pub patients: usize,
    /// Size of the application server's main binary, bytes.
    pub binary_bytes: usize,
    /// Number of generated report files.
    pub reports: usize,
}

impl DemoSize {
    /// The demo's default: 2,000 patients (about 5,000 cycles), an 8 MiB binary, 300 reports.
    pub fn demo() -> Self {
        Self {
            patients: 2000,
            binary_bytes: 8 << 20,
            reports: 300,
        }
    }

    /// A tiny site for unit tests and doctests.
    pub fn tiny() -> Self {
        Self {
            patients: 20,
            binary_bytes: 64 << 10,
            reports: 5,
        }
    }

    /// What the spec tests use: small but with every kind of row.
    pub fn test() -> Self {
        Self {
            patients: 150,
            binary_bytes: 512 << 10,
            reports: 30,
        }
    }
}

/// A deterministic generator (SplitMix64): the data only has to look varied, not be random.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// The JFIV-like schema of the demo database.
pub const SCHEMA: &str = "
CREATE TABLE patients (
    id TEXT PRIMARY KEY,              -- P000001
    nom TEXT NOT NULL,                -- PATIENTE-FICTIVE-0001
    prenom TEXT NOT NULL,
    date_naissance TEXT NOT NULL,
    conjoint TEXT,                    -- CONJOINT-FICTIF-0001
    gynecologue TEXT NOT NULL,
    cree_le TEXT NOT NULL
);
CREATE TABLE cycles (
    id TEXT PRIMARY KEY,              -- C0000001
    patient_id TEXT NOT NULL REFERENCES patients(id),
    type TEXT NOT NULL CHECK (type IN ('IIU', 'FIV', 'ICSI', 'TEC')),
    rang INTEGER NOT NULL,
    date_debut TEXT NOT NULL,
    protocole TEXT,
    ovocytes INTEGER,
    statut TEXT NOT NULL
);
CREATE TABLE embryons (
    id INTEGER PRIMARY KEY,
    cycle_id TEXT NOT NULL REFERENCES cycles(id),
    jour INTEGER NOT NULL,            -- J2, J3, J5, J6
    grade TEXT NOT NULL,
    devenir TEXT NOT NULL CHECK (devenir IN ('transfere', 'congele', 'non-evolutif'))
);
CREATE TABLE transferts (
    id INTEGER PRIMARY KEY,
    cycle_id TEXT NOT NULL REFERENCES cycles(id),
    date_transfert TEXT NOT NULL,
    nb_embryons INTEGER NOT NULL,
    resultat TEXT NOT NULL,
    hcg REAL
);
CREATE TABLE paillettes (
    id INTEGER PRIMARY KEY,
    embryon_id INTEGER NOT NULL REFERENCES embryons(id),
    cuve TEXT NOT NULL,
    canister INTEGER NOT NULL,
    congele_le TEXT NOT NULL
);
CREATE TABLE compte_rendus (
    id INTEGER PRIMARY KEY,
    cycle_id TEXT NOT NULL REFERENCES cycles(id),
    texte TEXT NOT NULL,
    pdf BLOB
);
CREATE INDEX cycles_patient ON cycles(patient_id);
CREATE INDEX embryons_cycle ON embryons(cycle_id);
";

/// What [`create_database`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseSummary {
    /// Rows per table.
    pub row_counts: BTreeMap<String, u64>,
    /// File size, bytes.
    pub bytes: u64,
}

fn date(days_since_1970: i64) -> String {
    chrono::DateTime::from_timestamp(days_since_1970 * 86_400, 0)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// Creates the demo database at `path` (which must not exist).
///
/// # Errors
/// [`DemoError::Exists`], SQLite and I/O errors.
pub fn create_database(path: &Path, size: &DemoSize) -> Result<DatabaseSummary, DemoError> {
    if path.exists() {
        return Err(DemoError::Exists {
            path: path.to_owned(),
        });
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let mut conn = Connection::open(path).map_err(sql(path))?;
    conn.execute_batch(SCHEMA).map_err(sql(path))?;
    let tx = conn.transaction().map_err(sql(path))?;
    {
        let mut g = Gen(0x4A46_4956);
        let mut patient = tx
            .prepare("INSERT INTO patients VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
            .map_err(sql(path))?;
        let mut cycle = tx
            .prepare("INSERT INTO cycles VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
            .map_err(sql(path))?;
        let mut embryo = tx
            .prepare(
                "INSERT INTO embryons (cycle_id, jour, grade, devenir) VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(sql(path))?;
        let mut transfer = tx
            .prepare("INSERT INTO transferts (cycle_id, date_transfert, nb_embryons, resultat, hcg) VALUES (?1, ?2, ?3, ?4, ?5)")
            .map_err(sql(path))?;
        let mut straw = tx
            .prepare("INSERT INTO paillettes (embryon_id, cuve, canister, congele_le) VALUES (?1, ?2, ?3, ?4)")
            .map_err(sql(path))?;
        let mut report = tx
            .prepare("INSERT INTO compte_rendus (cycle_id, texte, pdf) VALUES (?1, ?2, ?3)")
            .map_err(sql(path))?;
        let gynecologues = ["DR-FICTIF-A", "DR-FICTIF-B", "DR-FICTIF-C", "DR-FICTIF-D"];
        let grades = ["A", "B", "C", "4AA", "3BB", "5AB"];
        let protocols = [
            "antagoniste",
            "agoniste long",
            "naturel",
            "stimulation simple",
        ];
        let mut cycle_no = 0u64;
        for p in 1..=size.patients {
            let pid = format!("P{p:06}");
            let born = 4000 + g.below(6000) as i64; // 1980..1997
            let conjoint = (g.below(10) < 8).then(|| format!("CONJOINT-FICTIF-{p:04}"));
            patient
                .execute(rusqlite::params![
                    pid,
                    format!("PATIENTE-FICTIVE-{p:04}"),
                    "FICTIVE",
                    date(born),
                    conjoint,
                    gynecologues[g.below(4) as usize],
                    date(19_000 + g.below(1500) as i64),
                ])
                .map_err(sql(path))?;
            let cycles = 1 + g.below(4);
            for rang in 1..=cycles {
                cycle_no += 1;
                let cid = format!("C{cycle_no:07}");
                let kind = ["IIU", "FIV", "ICSI", "TEC"][g.below(4) as usize];
                let start = 19_000 + g.below(1800) as i64;
                let oocytes = matches!(kind, "FIV" | "ICSI").then(|| 3 + g.below(15) as i64);
                cycle
                    .execute(rusqlite::params![
                        cid,
                        pid,
                        kind,
                        rang as i64,
                        date(start),
                        protocols[g.below(4) as usize],
                        oocytes,
                        ["termine", "en cours", "annule"][g.below(3) as usize],
                    ])
                    .map_err(sql(path))?;
                if let Some(n) = oocytes {
                    for _ in 0..(n / 2) {
                        let devenir = ["transfere", "congele", "non-evolutif"][g.below(3) as usize];
                        embryo
                            .execute(rusqlite::params![
                                cid,
                                [2, 3, 5, 6][g.below(4) as usize],
                                grades[g.below(6) as usize],
                                devenir,
                            ])
                            .map_err(sql(path))?;
                        if devenir == "congele" {
                            straw
                                .execute(rusqlite::params![
                                    tx.last_insert_rowid(),
                                    format!("CUVE-{}", 1 + g.below(3)),
                                    1 + g.below(12) as i64,
                                    date(start + 5),
                                ])
                                .map_err(sql(path))?;
                        }
                    }
                }
                if kind != "IIU" || g.below(2) == 0 {
                    let positive = g.below(3) == 0;
                    transfer
                        .execute(rusqlite::params![
                            cid,
                            date(start + 5),
                            1 + g.below(2) as i64,
                            if positive { "grossesse" } else { "negatif" },
                            positive.then(|| 50.0 + g.below(2000) as f64 / 10.0),
                        ])
                        .map_err(sql(path))?;
                }
                let mut pdf = vec![0u8; 256 + g.below(1024) as usize];
                g.fill(&mut pdf);
                report
                    .execute(rusqlite::params![
                        cid,
                        format!(
                            "Compte rendu FICTIF du cycle {cid} ({kind}, rang {rang}) de la patiente fictive {pid}. Données synthétiques de démonstration."
                        ),
                        pdf,
                    ])
                    .map_err(sql(path))?;
            }
        }
    }
    tx.commit().map_err(sql(path))?;
    drop(conn);
    let row_counts = row_counts(path)?;
    let bytes = fs::metadata(path).map_err(io(path))?.len();
    Ok(DatabaseSummary { row_counts, bytes })
}

/// Rows per table of the SQLite database at `path` (user tables only).
///
/// # Errors
/// SQLite errors.
pub fn row_counts(path: &Path) -> Result<BTreeMap<String, u64>, DemoError> {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(sql(path))?;
    let tables = table_names(&conn).map_err(sql(path))?;
    let mut out = BTreeMap::new();
    for t in tables {
        let n: i64 = conn
            .query_row(&format!("SELECT count(*) FROM \"{t}\""), [], |r| r.get(0))
            .map_err(sql(path))?;
        out.insert(t, n as u64);
    }
    Ok(out)
}

fn table_names(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )?;
    let names = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(names)
}

/// A BLAKE3 of every table's rows in rowid order (values in SQLite's text rendering with their
/// type), per table: equal digests mean equal data.
fn table_digests(path: &Path) -> Result<BTreeMap<String, String>, DemoError> {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(sql(path))?;
    let mut out = BTreeMap::new();
    for t in table_names(&conn).map_err(sql(path))? {
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM \"{t}\" ORDER BY rowid"))
            .map_err(sql(path))?;
        let cols = stmt.column_count();
        let mut hasher = blake3::Hasher::new();
        let mut rows = stmt.query([]).map_err(sql(path))?;
        while let Some(row) = rows.next().map_err(sql(path))? {
            for i in 0..cols {
                use rusqlite::types::ValueRef;
                match row.get_ref(i).map_err(sql(path))? {
                    ValueRef::Null => hasher.update(b"N"),
                    ValueRef::Integer(v) => hasher.update(b"I").update(&v.to_le_bytes()),
                    ValueRef::Real(v) => hasher.update(b"R").update(&v.to_le_bytes()),
                    ValueRef::Text(v) => hasher
                        .update(b"T")
                        .update(&(v.len() as u64).to_le_bytes())
                        .update(v),
                    ValueRef::Blob(v) => hasher
                        .update(b"B")
                        .update(&(v.len() as u64).to_le_bytes())
                        .update(v),
                };
            }
        }
        out.insert(t, hasher.finalize().to_hex().to_string());
    }
    Ok(out)
}

/// `PRAGMA integrity_check` of the database at `path`: `ok`, or SQLite's list of problems.
///
/// # Errors
/// SQLite errors (a file that is not a database).
pub fn integrity_check(path: &Path) -> Result<String, DemoError> {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(sql(path))?;
    let mut stmt = conn.prepare("PRAGMA integrity_check").map_err(sql(path))?;
    let lines = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(sql(path))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sql(path))?;
    Ok(lines.join("; "))
}

/// Compares two SQLite databases: integrity of the second, same tables, same row counts,
/// same rows. Returns the differences (empty: identical data).
///
/// # Errors
/// SQLite errors opening either.
pub fn compare_databases(original: &Path, restored: &Path) -> Result<Vec<String>, DemoError> {
    let mut diffs = Vec::new();
    let integrity = integrity_check(restored)?;
    if integrity != "ok" {
        diffs.push(format!(
            "integrity_check of the restored database: {integrity}"
        ));
    }
    let (a, b) = (row_counts(original)?, row_counts(restored)?);
    if a != b {
        diffs.push(format!("row counts differ: original {a:?}, restored {b:?}"));
    }
    let (da, db) = (table_digests(original)?, table_digests(restored)?);
    for (table, digest) in &da {
        match db.get(table) {
            None => diffs.push(format!("table {table} missing from the restored database")),
            Some(d) if d != digest => diffs.push(format!("table {table}: rows differ")),
            Some(_) => {}
        }
    }
    for table in db.keys() {
        if !da.contains_key(table) {
            diffs.push(format!("table {table} only in the restored database"));
        }
    }
    Ok(diffs)
}

/// What [`create_app_tree`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeSummary {
    /// Regular files.
    pub files: u64,
    /// Their total size.
    pub bytes: u64,
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), DemoError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let mut f = fs::File::create(path).map_err(io(path))?;
    f.write_all(bytes).map_err(io(path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io(path))?;
    Ok(())
}

/// Creates an application-server tree under `root`: `opt/jfiv` (binaries, libraries, report
/// templates, generated reports, a `current` symlink, logs) and `etc/jfiv` (configuration).
///
/// # Errors
/// [`DemoError::Exists`] if `root/opt/jfiv` exists; I/O errors.
pub fn create_app_tree(root: &Path, size: &DemoSize) -> Result<TreeSummary, DemoError> {
    let opt = root.join("opt/jfiv");
    if opt.exists() {
        return Err(DemoError::Exists { path: opt });
    }
    let etc = root.join("etc/jfiv");
    let mut g = Gen(0x5345_5256);
    let mut files = 0u64;
    let mut bytes = 0u64;
    let mut add = |path: PathBuf, content: Vec<u8>, mode: u32| -> Result<(), DemoError> {
        files += 1;
        bytes += content.len() as u64;
        write_file(&path, &content, mode)
    };
    // Incompressible binaries.
    let mut bin = vec![0u8; size.binary_bytes];
    g.fill(&mut bin);
    add(opt.join("releases/4.2.1/bin/jfiv-server"), bin, 0o755)?;
    for (name, len) in [
        ("jfiv-core.jar", 6),
        ("jfiv-abm-export.jar", 3),
        ("ojdbc8.jar", 4),
    ] {
        let mut jar = vec![0u8; size.binary_bytes * len / 16];
        g.fill(&mut jar);
        add(opt.join(format!("releases/4.2.1/lib/{name}")), jar, 0o644)?;
    }
    std::os::unix::fs::symlink("releases/4.2.1", opt.join("current")).map_err(io(&opt))?;
    // Text: templates and generated reports.
    for i in 0..size.reports {
        let text = format!(
            "{{\\rtf1 Compte rendu FICTIF n°{i}\\par Patiente : PATIENTE-FICTIVE-{:04}\\par Cycle : C{:07}\\par {}\\par}}\n",
            1 + i % 1000,
            1 + i,
            "Données synthétiques de démonstration, aucune personne réelle. ".repeat(20)
        );
        add(
            opt.join(format!(
                "reports/{:04}/{:02}/cr-{i:05}.rtf",
                2025 + i % 2,
                1 + i % 12
            )),
            text.into_bytes(),
            0o640,
        )?;
    }
    for name in ["consultation", "ponction", "transfert", "abm-annuel"] {
        add(
            opt.join(format!("templates/{name}.rtf")),
            format!("{{\\rtf1 Modèle {name} — champs {{patient}} {{cycle}} {{date}}\\par}}\n")
                .into_bytes(),
            0o644,
        )?;
    }
    add(
        etc.join("jfiv.conf"),
        b"# JFIV application server (demo)\nlisten = 0.0.0.0:8443\ndatabase = /srv/jfiv/data/jfiv.sqlite\nabm.export.dir = /opt/jfiv/reports/abm\n".to_vec(),
        0o640,
    )?;
    add(
        etc.join("profiles.toml"),
        b"[roles]\nJFIV_SECRETARIAT = \"secretary\"\nJFIV_CLINICIEN = \"clinician\"\nJFIV_BIOLOGISTE = \"biologist\"\n".to_vec(),
        0o640,
    )?;
    add(
        opt.join("logs/jfiv-server.log"),
        b"demo log line, excluded from backups\n".to_vec(),
        0o640,
    )?;
    Ok(TreeSummary { files, bytes })
}

/// Compares the files under `original` and `restored` (relative paths, kinds, contents,
/// permission bits, symlink targets), skipping paths for which `skip` returns true. Returns the
/// differences.
///
/// # Errors
/// I/O errors walking `original`.
pub fn compare_trees(
    original: &Path,
    restored: &Path,
    skip: &dyn Fn(&Path) -> bool,
) -> Result<Vec<String>, DemoError> {
    let mut diffs = Vec::new();
    let listing = |root: &Path| -> Result<BTreeMap<PathBuf, fs::Metadata>, DemoError> {
        let mut out = BTreeMap::new();
        if !root.exists() {
            return Ok(out);
        }
        for entry in walkdir::WalkDir::new(root).min_depth(1) {
            let entry = entry.map_err(|e| DemoError::Io {
                path: root.to_owned(),
                source: std::io::Error::other(e.to_string()),
            })?;
            let rel = entry
                .path()
                .strip_prefix(root)
                .unwrap_or(entry.path())
                .to_owned();
            if skip(&rel) {
                continue;
            }
            let meta = fs::symlink_metadata(entry.path()).map_err(io(entry.path()))?;
            out.insert(rel, meta);
        }
        Ok(out)
    };
    let (a, b) = (listing(original)?, listing(restored)?);
    for (rel, ma) in &a {
        let Some(mb) = b.get(rel) else {
            diffs.push(format!("{} missing from the restored tree", rel.display()));
            continue;
        };
        let (pa, pb) = (original.join(rel), restored.join(rel));
        if ma.file_type().is_symlink() {
            let (ta, tb) = (fs::read_link(&pa).ok(), fs::read_link(&pb).ok());
            if !mb.file_type().is_symlink() || ta != tb {
                diffs.push(format!("{}: symlink differs", rel.display()));
            }
        } else if ma.is_file() {
            if !mb.is_file() {
                diffs.push(format!(
                    "{}: not a file in the restored tree",
                    rel.display()
                ));
                continue;
            }
            let (ca, cb) = (
                fs::read(&pa).map_err(io(&pa))?,
                fs::read(&pb).map_err(io(&pb))?,
            );
            if blake3::hash(&ca) != blake3::hash(&cb) {
                diffs.push(format!("{}: content differs", rel.display()));
            }
            if ma.permissions().mode() & 0o7777 != mb.permissions().mode() & 0o7777 {
                diffs.push(format!(
                    "{}: mode {:o} restored as {:o}",
                    rel.display(),
                    ma.permissions().mode() & 0o7777,
                    mb.permissions().mode() & 0o7777
                ));
            }
        } else if ma.is_dir() && !mb.is_dir() {
            diffs.push(format!(
                "{}: not a directory in the restored tree",
                rel.display()
            ));
        }
    }
    for rel in b.keys() {
        if !a.contains_key(rel) {
            diffs.push(format!("{} only in the restored tree", rel.display()));
        }
    }
    Ok(diffs)
}

/// The passphrase of the demo's repository key file. A demo, not a secret: it is written to
/// `server/etc/jfiv-backup/passphrase` and the demo says so.
pub const DEMO_PASSPHRASE: &str = "Demo-Le-Bois-pas-un-secret-2026";

/// The demo's backup operator and password (a demo account).
pub const DEMO_OPERATOR: (&str, &str) = ("m.lefevre", "Sauvegarde#Nuit-2026");

/// The barcodes of the demo's virtual library: three daily tapes, one weekly, one monthly (so
/// the demo runs whatever the day of the week).
pub const DEMO_TAPES: [(&str, &str); 5] = [
    ("LEB001L6", "daily"),
    ("LEB002L6", "daily"),
    ("LEB003L6", "daily"),
    ("LEBW01L6", "weekly"),
    ("LEBM01L6", "monthly"),
];

/// The virtual cartridges of a demo site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoTapes {
    /// Capacity of each cartridge, bytes.
    pub capacity: u64,
    /// Its early-warning zone, bytes: it must hold the largest record finished after the
    /// warning (a chunk, at most 4 MiB) and the volume trailer.
    pub early_warning_zone: u64,
    /// How many daily tapes (`LEB001L6`, `LEB002L6`...; at least one); the weekly and monthly
    /// tapes are always `LEBW01L6` and `LEBM01L6`.
    pub daily: usize,
}

impl DemoTapes {
    /// The demo's default: 4 GiB cartridges with a 64 MiB early-warning zone, the five tapes of
    /// [`DEMO_TAPES`].
    pub fn demo() -> Self {
        Self {
            capacity: 4 << 30,
            early_warning_zone: 64 << 20,
            daily: 3,
        }
    }

    /// The barcodes and pools.
    pub fn cartridges(&self) -> Vec<(String, &'static str)> {
        (1..=self.daily.max(1))
            .map(|i| (format!("LEB{i:03}L6"), "daily"))
            .chain([
                ("LEBW01L6".to_owned(), "weekly"),
                ("LEBM01L6".to_owned(), "monthly"),
            ])
            .collect()
    }
}

/// A demo site on disk.
#[derive(Debug, Clone)]
pub struct DemoSite {
    /// The work directory.
    pub dir: PathBuf,
    /// The site configuration file.
    pub config: PathBuf,
    /// The "server" (burns in the scenario): database, application tree, state, key file.
    pub server: PathBuf,
    /// The paper key, as printed for the safe.
    pub paper_key: PathBuf,
    /// A pristine copy of the database and application tree, kept outside the site, to
    /// compare the restored server with.
    pub originals: PathBuf,
    /// What the database holds.
    pub database: DatabaseSummary,
    /// What the application tree holds.
    pub tree: TreeSummary,
}

/// Anything that can fail while building the demo site.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SiteError {
    /// Demo data.
    #[error(transparent)]
    Demo(#[from] DemoError),
    /// The backup engine.
    #[error(transparent)]
    Backup(#[from] jfiv_backup::Error),
    /// The tapes.
    #[error(transparent)]
    Tape(#[from] jfiv_backup::tape::Error),
    /// The audit trail.
    #[error(transparent)]
    Audit(#[from] jfiv_audit::Error),
    /// The accounts.
    #[error(transparent)]
    Auth(#[from] jfiv_auth::Error),
    /// The restore.
    #[error(transparent)]
    Restore(#[from] jfiv_restore::Error),
    /// The configuration written does not validate (a bug of the demo).
    #[error(transparent)]
    Config(#[from] crate::site::ConfigError),
}

fn demo_config(host: &str, tapes: &DemoTapes) -> String {
    let mut cartridges = String::new();
    for (barcode, pool) in tapes.cartridges() {
        cartridges.push_str(&format!(
            "[[tape.cartridges]]\nbarcode = \"{barcode}\"\npool = \"{pool}\"\nlocation = \"{}\"\n",
            if pool == "daily" {
                "server-room"
            } else {
                "offsite"
            }
        ));
    }
    format!(
        r#"# Demo site written by hospital_demo (all data synthetic). See examples/hospital.toml.
[site]
name = "Hôpital Privé Le Bois (démo)"
host = "{host}"
state_dir = "server/var/lib/jfiv"
rpo_hours = 26
rpo_critical_hours = 48

[database]
kind = "sqlite"
name = "jfiv-db"
path = "server/srv/jfiv/data/jfiv.sqlite"

[application]
name = "jfiv-app"
roots = ["server/opt/jfiv", "server/etc/jfiv"]
server_root = "server"
exclude = ["opt/jfiv/logs/**"]

[disk]
dir = "batiment-c/disques/jfiv"
warn_used_percent = 85
critical_used_percent = 95
verify_slices = 7

[disk.retention]
daily = 7
weekly = 5
monthly = 12

[tape]
library = "vtl"
block_size_kib = 512
weekly_day = "fri"

[tape.pools.daily]
retention_days = 2
[tape.pools.weekly]
retention_days = 31
[tape.pools.monthly]
retention_days = 365

{cartridges}
[locations]
drive = "Lecteur LTO-6, baie B2"
server_room = "Salle informatique, niveau -1"
offsite_room = "Local archives, bâtiment C"
leave_server_room_by = "09:30"

[keys]
repository_key_file = "server/etc/jfiv-backup/repository.key"
passphrase_file = "server/etc/jfiv-backup/passphrase"

[audit]
dir = "serveur-de-journaux/audit"
key_file = "serveur-de-journaux/audit.keys"
checkpoint_dir = "batiment-c/disques/audit-checkpoints"

[operators]
accounts_file = "server/etc/jfiv-backup/operators.json"

[remote_access]
lan = ["10.20.0.0/16"]
"#
    )
}

/// Builds the demo site in `dir` (which must not hold one): the database and application
/// tree, a pristine copy of both for the final comparison, the repository key (with its paper
/// copy), the audit keys, the operator account, the disk target, and a virtual library whose
/// tapes are labelled and placed (daily tapes in the server room, the others offsite).
///
/// The repository key file uses [`jfiv_backup::KdfParams::insecure_for_tests`], the backup
/// crate's documented fast parameters, so that the demo opens it instantly; a real site uses
/// the default (argon2id 64 MiB, t = 3).
///
/// # Errors
/// [`SiteError`].
pub async fn build_site(
    dir: &Path,
    size: &DemoSize,
    clock: std::sync::Arc<dyn jfiv_audit::Clock>,
) -> Result<DemoSite, SiteError> {
    build_site_with(dir, size, &DemoTapes::demo(), clock).await
}

/// [`build_site`] with other cartridges (tiny ones, to make a session span tapes; a pool of a
/// single tape).
///
/// # Errors
/// [`SiteError`].
pub async fn build_site_with(
    dir: &Path,
    size: &DemoSize,
    tapes: &DemoTapes,
    clock: std::sync::Arc<dyn jfiv_audit::Clock>,
) -> Result<DemoSite, SiteError> {
    use jfiv_backup::tape::{
        Catalog, Custody, LocationRegister, MediaLabel, Pool, VirtualLibrary, VirtualTapeSpec,
        label_tape,
    };
    let server = dir.join("server");
    let db = server.join("srv/jfiv/data/jfiv.sqlite");
    let database = create_database(&db, size)?;
    let tree = create_app_tree(&server, size)?;
    // Pristine copies for the comparison after the fire (kept "in the auditor's pocket").
    let originals = dir.join("originals");
    fs::create_dir_all(&originals).map_err(io(&originals))?;
    fs::copy(&db, originals.join("jfiv.sqlite")).map_err(io(&db))?;
    copy_tree(&server.join("opt"), &originals.join("tree/opt"))?;
    copy_tree(&server.join("etc/jfiv"), &originals.join("tree/etc/jfiv"))?;

    // Keys.
    let keydir = server.join("etc/jfiv-backup");
    fs::create_dir_all(&keydir).map_err(io(&keydir))?;
    let passphrase_file = keydir.join("passphrase");
    write_file(
        &passphrase_file,
        format!("{DEMO_PASSPHRASE}\n").as_bytes(),
        0o600,
    )?;
    let key = jfiv_backup::RepositoryKey::generate();
    jfiv_backup::KeyFile::seal(
        &key,
        &secrecy::SecretString::from(DEMO_PASSPHRASE),
        jfiv_backup::KdfParams::insecure_for_tests(),
    )?
    .write(&keydir.join("repository.key"))?;
    let safe = dir.join("coffre-fort");
    let paper_key = safe.join("paper-key.txt");
    write_file(&paper_key, key.paper_key().text().as_bytes(), 0o600)?;
    let logs = dir.join("serveur-de-journaux");
    fs::create_dir_all(&logs).map_err(io(&logs))?;
    jfiv_audit::AuditKeys::generate_from_os().save(&logs.join("audit.keys"))?;

    // The operator.
    let accounts = jfiv_auth::LocalAccounts::open(
        keydir.join("operators.json"),
        jfiv_auth::LocalOptions::default(),
    )?;
    accounts.create_account(
        DEMO_OPERATOR.0,
        jfiv_auth::Profile::BackupOperator,
        &secrecy::SecretString::from(DEMO_OPERATOR.1),
    )?;

    // The disk in the other room.
    let disk = dir.join("batiment-c/disques/jfiv");
    jfiv_backup::DiskTarget::create(&disk)?;

    // The tape library, labelled.
    let config_path = dir.join("hospital.toml");
    write_file(
        &config_path,
        demo_config(&jfiv_backup::hostname(), tapes).as_bytes(),
        0o644,
    )?;
    let cartridges = tapes.cartridges();
    let slots: Vec<String> = (1..=cartridges.len())
        .map(|i| format!("slot-{i}"))
        .collect();
    let slot_refs: Vec<&str> = slots.iter().map(String::as_str).collect();
    let mut library = VirtualLibrary::create(dir.join("vtl"), &slot_refs)?;
    let site = crate::site::SiteConfig::load(&config_path)?;
    let policy = crate::nightly::rotation_of(&site);
    let mut catalog = Catalog::default();
    let log = crate::nightly::open_audit(&site, clock.clone()).map_err(|e| match e {
        crate::nightly::NightlyError::Audit(a) => SiteError::Audit(a),
        other => SiteError::Demo(DemoError::Io {
            path: site.audit.dir.clone(),
            source: std::io::Error::other(other.to_string()),
        }),
    })?;
    let mut register = LocationRegister::default();
    let locations = crate::nightly::locations_of(&site);
    let custody = Custody {
        config: &locations,
        clock: clock.as_ref(),
        sink: &log,
        host: &site.site.host,
    };
    for ((barcode, pool), slot) in cartridges.iter().zip(&slots) {
        let barcode = barcode.as_str();
        library.add_tape(
            slot,
            &VirtualTapeSpec {
                barcode: barcode.to_owned(),
                capacity: tapes.capacity,
                early_warning_zone: tapes.early_warning_zone,
            },
        )?;
        let mut tape = library.load(barcode)?;
        let pool: Pool = pool.parse()?;
        let label = MediaLabel::new(uuid::Uuid::new_v4(), barcode, pool, clock.now());
        label_tape(&mut tape, &label, &[], &policy, clock.now(), false)?;
        catalog.add_label(label);
        let cartridge = site.tape.cartridges.iter().find(|c| c.barcode == *barcode);
        let place = cartridge.map_or(crate::site::Place::ServerRoom, |c| c.location);
        register
            .record_move(
                barcode,
                crate::nightly::tape_place(place),
                DEMO_OPERATOR.0,
                &custody,
            )
            .await?;
        if place == crate::site::Place::Offsite {
            library.take_out(barcode)?;
        }
    }
    fs::create_dir_all(&site.site.state_dir).map_err(io(&site.site.state_dir))?;
    catalog.save(&site.tape.catalog)?;
    register.save(&site.tape.register)?;
    Ok(DemoSite {
        dir: dir.to_owned(),
        config: config_path,
        server,
        paper_key,
        originals,
        database,
        tree,
    })
}

/// Copies a tree (files, directories, symlinks, permission bits).
///
/// # Errors
/// I/O errors.
pub fn copy_tree(from: &Path, to: &Path) -> Result<(), DemoError> {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.map_err(|e| DemoError::Io {
            path: from.to_owned(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let rel = entry.path().strip_prefix(from).unwrap_or(entry.path());
        let dest = to.join(rel);
        let ft = entry.file_type();
        if ft.is_dir() {
            fs::create_dir_all(&dest).map_err(io(&dest))?;
        } else if ft.is_symlink() {
            let target = fs::read_link(entry.path()).map_err(io(entry.path()))?;
            std::os::unix::fs::symlink(target, &dest).map_err(io(&dest))?;
        } else if ft.is_file() {
            fs::copy(entry.path(), &dest).map_err(io(entry.path()))?;
        }
    }
    Ok(())
}

/// What [`rebuild_server`] did.
#[derive(Debug)]
pub struct Rebuilt {
    /// The plan, as computed and executed.
    pub plan: jfiv_restore::RestorePlan,
    /// The execution.
    pub report: jfiv_restore::ExecutionReport,
    /// What happened, for a human.
    pub notes: Vec<String>,
}

/// The degraded procedure after the server burned: the repository key from the paper key in
/// the safe, the offsite tapes brought back into the library, the tape catalog rebuilt by
/// scanning them and every session read back, the disk target verified, then the restore plan
/// computed and executed onto `new_root` (checkpoints in `state_dir`), all audited in `log` as
/// `operator`.
///
/// # Errors
/// [`SiteError`] from the key, the tapes, the disk target or the restore.
pub async fn rebuild_server(
    site: &crate::site::SiteConfig,
    paper_key: &Path,
    new_root: &Path,
    state_dir: PathBuf,
    log: std::sync::Arc<jfiv_audit::FileLog>,
    operator: &jfiv_audit::Actor,
    clock: std::sync::Arc<dyn jfiv_audit::Clock>,
) -> Result<Rebuilt, SiteError> {
    use jfiv_audit::Origin;
    use jfiv_backup::tape::{Catalog, Custody, LocationRegister, Place, VirtualLibrary, scan_tape};
    use jfiv_backup::{AuditHook, DiskTarget, PaperKey, VerifyOptions};
    use jfiv_restore::{
        CatalogOrigin, ExecuteContext, ExecuteOptions, Inventory, KeyMaterial, KnownKey,
        LibraryTapes, NoRestoreProgress, RestorePlan, RestoreRequest, execute,
    };
    use std::sync::Arc;
    let mut notes = Vec::new();
    let locations = crate::nightly::locations_of(site);
    let custody = Custody {
        config: &locations,
        clock: clock.as_ref(),
        sink: log.as_ref(),
        host: &site.site.host,
    };
    let mut library = VirtualLibrary::open(library_dir(site)?)?;
    let paper_text = fs::read_to_string(paper_key).map_err(io(paper_key))?;
    let key = PaperKey::parse(&paper_text)?;
    notes.push(format!(
        "   repository key recovered from the paper key in the safe ({})",
        key.fingerprint()
    ));
    // The operator brings the offsite tapes back and puts them in the library's free slots.
    let free: Vec<String> = library
        .slots()
        .filter(|(_, b)| b.is_none())
        .map(|(s, _)| s.to_owned())
        .collect();
    let mut outside = Vec::new();
    for barcode in library.barcodes()? {
        if library.slot_of(&barcode).is_none() {
            outside.push(barcode);
        }
    }
    let mut register = LocationRegister::default();
    for (barcode, slot) in outside.iter().zip(&free) {
        library.put_in(barcode, slot)?;
    }
    for barcode in library.barcodes()? {
        register
            .record_move(&barcode, Place::ServerRoom, &operator.user_id, &custody)
            .await?;
    }
    // The catalog burned: rebuild it from the tapes.
    let mut catalog = Catalog::default();
    for barcode in library.barcodes()? {
        let mut tape = library.load(&barcode)?;
        let scan = scan_tape(&mut tape)?;
        catalog.merge_scan(&scan);
    }
    // A scan finds what is on the tapes; reading the sessions back says whether they are intact.
    let sessions: Vec<(jfiv_backup::tape::Uuid, String, u64)> = catalog
        .sessions
        .values()
        .filter_map(|s| {
            s.catalog
                .volumes
                .first()
                .map(|v| (s.catalog.session, v.tape.clone(), v.file))
        })
        .collect();
    for (session, barcode, file) in sessions {
        let tape = library.load(&barcode)?;
        // A session that spans tapes is read on from the next ones of the library.
        let mut changer = jfiv_backup::tape::LibraryChanger::new(
            &library,
            library.barcodes()?,
            jfiv_backup::tape::ChangerPurpose::Read,
        );
        let checked = jfiv_backup::tape::verify_session(
            Box::new(tape),
            file,
            &mut changer,
            &key,
            clock.as_ref(),
        )?;
        notes.push(format!(
            "   session {session} on {barcode} read back: {}",
            if checked.result.ok {
                "every chunk authentic"
            } else {
                "DAMAGED"
            }
        ));
        catalog.record_verify(session, checked.result)?;
    }
    notes.push(format!(
        "   catalog rebuilt by scanning {} tapes: {} session(s)",
        catalog.tapes.len(),
        catalog.sessions.len()
    ));
    let disk = Arc::new(DiskTarget::open_read_only(&site.disk.dir)?);
    let disk_check = jfiv_backup::verify(disk.as_ref(), &key, &VerifyOptions::default()).await?;
    let mut inventory = Inventory::default();
    inventory
        .add_disk_target(
            "disques-batiment-c",
            &site.locations.offsite_room,
            disk.as_ref(),
            &key,
            Some((&disk_check, clock.now())),
        )
        .await?;
    inventory.add_tape_catalog(&catalog, &register, &locations, CatalogOrigin::TapeScan);
    inventory.keys.push(KeyMaterial::PaperKey {
        kept_at: "le coffre-fort de la direction".into(),
    });
    let mut request = RestoreRequest::whole_server(new_root);
    request.application_source = site.application.name.clone();
    request.database_source = site.database.name().to_owned();
    request.database_dir = PathBuf::from("srv/jfiv/data");
    let plan = RestorePlan::compute(&inventory, &request, clock.as_ref())?;
    let mut tapes = LibraryTapes::new(VirtualLibrary::open(library_dir(site)?)?);
    let mut ctx = ExecuteContext {
        keys: &KnownKey(key.clone()),
        disk_targets: [(
            "disques-batiment-c".to_owned(),
            disk.clone() as Arc<dyn jfiv_backup::BackupTarget>,
        )]
        .into(),
        tapes: Some(&mut tapes),
        database_hooks: Vec::new(),
        audit: AuditHook {
            sink: log.clone(),
            actor: operator.clone(),
            origin: Origin::System {
                host: "nouveau-serveur".into(),
            },
            clock: clock.clone(),
        },
        progress: &NoRestoreProgress,
        options: ExecuteOptions::new(state_dir),
    };
    let executed = execute(&plan, &mut ctx).await?;
    for step in &executed.steps {
        notes.push(format!(
            "   [{:?}] {} ({:.1} s)",
            step.status, step.description, step.seconds
        ));
    }
    Ok(Rebuilt {
        plan,
        report: executed,
        notes,
    })
}

fn library_dir(site: &crate::site::SiteConfig) -> Result<PathBuf, SiteError> {
    match &site.tape.backend {
        crate::site::TapeBackend::Library(d) => Ok(d.clone()),
        crate::site::TapeBackend::Device(d) => Err(SiteError::Demo(DemoError::Io {
            path: d.clone(),
            source: std::io::Error::other("the demo procedure uses a virtual library"),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_database_is_deterministic_fake_and_complete() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.sqlite"), dir.path().join("b.sqlite"));
        let sa = create_database(&a, &DemoSize::tiny()).unwrap();
        let sb = create_database(&b, &DemoSize::tiny()).unwrap();
        assert_eq!(sa.row_counts, sb.row_counts);
        assert!(compare_databases(&a, &b).unwrap().is_empty());
        for table in [
            "patients",
            "cycles",
            "embryons",
            "transferts",
            "paillettes",
            "compte_rendus",
        ] {
            assert!(
                sa.row_counts[table] > 0,
                "{table} is empty: {:?}",
                sa.row_counts
            );
        }
        let conn = Connection::open(&a).unwrap();
        let name: String = conn
            .query_row("SELECT nom FROM patients WHERE id = 'P000001'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(name, "PATIENTE-FICTIVE-0001");
        let kinds: i64 = conn
            .query_row("SELECT count(DISTINCT type) FROM cycles", [], |r| r.get(0))
            .unwrap();
        assert_eq!(kinds, 4, "IIU, FIV, ICSI and TEC cycles");
        assert!(matches!(
            create_database(&a, &DemoSize::tiny()),
            Err(DemoError::Exists { .. })
        ));
    }

    #[test]
    fn the_default_demo_tapes_are_the_documented_ones() {
        let tapes = DemoTapes::demo().cartridges();
        let listed: Vec<(&str, &str)> = tapes.iter().map(|(b, p)| (b.as_str(), *p)).collect();
        assert_eq!(listed, DEMO_TAPES);
        let one = DemoTapes {
            daily: 1,
            ..DemoTapes::demo()
        };
        assert_eq!(
            one.cartridges()
                .iter()
                .filter(|(_, p)| *p == "daily")
                .count(),
            1
        );
    }

    #[test]
    fn a_changed_row_is_a_difference() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.sqlite"), dir.path().join("b.sqlite"));
        create_database(&a, &DemoSize::tiny()).unwrap();
        fs::copy(&a, &b).unwrap();
        Connection::open(&b)
            .unwrap()
            .execute(
                "UPDATE cycles SET statut = 'annule' WHERE id = 'C0000001' AND statut != 'annule'",
                [],
            )
            .unwrap();
        Connection::open(&b)
            .unwrap()
            .execute("UPDATE embryons SET grade = 'Z' WHERE id = 1", [])
            .unwrap();
        let diffs = compare_databases(&a, &b).unwrap();
        assert!(diffs.iter().any(|d| d.contains("embryons")), "{diffs:?}");
    }

    #[test]
    fn tree_comparison_sees_content_mode_and_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let s = create_app_tree(&a, &DemoSize::tiny()).unwrap();
        assert!(s.files > 10);
        create_app_tree(&b, &DemoSize::tiny()).unwrap();
        let none = |_: &Path| false;
        assert!(compare_trees(&a, &b, &none).unwrap().is_empty());
        fs::write(b.join("etc/jfiv/jfiv.conf"), b"changed").unwrap();
        fs::set_permissions(
            b.join("opt/jfiv/templates/ponction.rtf"),
            fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        fs::remove_file(b.join("opt/jfiv/templates/transfert.rtf")).unwrap();
        let diffs = compare_trees(&a, &b, &none).unwrap();
        assert_eq!(diffs.len(), 3, "{diffs:?}");
        let skip_etc = |p: &Path| p.starts_with("etc");
        assert_eq!(compare_trees(&a, &b, &skip_etc).unwrap().len(), 2);
    }
}
