//! The whole procedure of Hôpital Privé Le Bois on a synthetic site, in under a minute.
//!
//! `cargo run --release --example hospital_demo [-- --workdir DIR]`
//!
//! `--workdir DIR --site-only` only builds the demo site and stops: `DIR/hospital.toml` is then
//! a site configuration the other examples take with `--config` (`nightly_backup`,
//! `check_backup`, `audit`, `remote_login`, `tape`, `degraded_restore`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use jfiv::audit::{Actor, Checkpoint, Clock, SystemClock};
use jfiv::auth::{
    AccessGate, ConnectionContext, Credentials, LocalAccounts, LocalOptions, Permission,
    RemoteAccessPolicy,
};
use jfiv::backup::tape::{Custody, LocationRegister, Place, VirtualLibrary};
use jfiv::demo::{self, DemoSize};
use jfiv::nightly::{self, LogLines};
use jfiv::site::{OperatorsConfig, SiteConfig};

/// Runs the JFIV procedure end to end on a synthetic site: builds a demo hospital (a SQLite
/// database of obviously fake patients and IIU/FIV/ICSI/TEC cycles, an application server, a
/// virtual tape library, a disk in another room, an operator account), logs in as the backup
/// operator, runs the nightly backup (database to tape with read-back verification,
/// application to disk), moves the tape to the offsite room, burns the server (database,
/// application, catalogs and key file gone), rebuilds it on a new root from the offsite tape,
/// the disk and the paper key, checks the restored database and files against the originals,
/// verifies the audit trail, and prints the measured RPO and RTO. Exits non-zero if anything
/// differs.
#[derive(Debug, Parser)]
#[command(name = "hospital_demo", version, about, long_about)]
struct Args {
    /// Work directory for the demo site (must not exist or be empty); default: a temporary
    /// directory removed at the end.
    #[arg(long)]
    workdir: Option<PathBuf>,
    /// Size of the demo: `demo` (2,000 patients, default) or `small` (150 patients).
    #[arg(long, default_value = "demo")]
    size: String,
    /// Only build the demo site in --workdir and stop: its `hospital.toml` is then a site
    /// configuration for the other examples' `--config`.
    #[arg(long, requires = "workdir")]
    site_only: bool,
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn say(text: &str) {
    println!("{text}");
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("hospital_demo: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> Res<bool> {
    let started = Instant::now();
    let temp;
    let dir = match &args.workdir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            if std::fs::read_dir(d)?.next().is_some() {
                return Err(format!("{} is not empty", d.display()).into());
            }
            d.clone()
        }
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_owned()
        }
    };
    let size = match args.size.as_str() {
        "small" => DemoSize::test(),
        _ => DemoSize::demo(),
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);

    say("== 1. The demo site of Hôpital Privé Le Bois (synthetic data only)");
    let built = demo::build_site(&dir, &size, clock.clone()).await?;
    let site = SiteConfig::load(&built.config)?;
    say(&format!(
        "   site in {}; database: {} patients, {} cycles, {} embryos ({} KiB); application: {} files ({} KiB)",
        dir.display(),
        built.database.row_counts["patients"],
        built.database.row_counts["cycles"],
        built.database.row_counts["embryons"],
        built.database.bytes / 1024,
        built.tree.files,
        built.tree.bytes / 1024
    ));
    if args.site_only {
        say(&format!(
            "   site configuration: {} (try: cargo run --example nightly_backup -- --config {})",
            built.config.display(),
            built.config.display()
        ));
        say(&format!(
            "   demo operator {} (password \"{}\", a demo value); demo passphrase in {}",
            demo::DEMO_OPERATOR.0,
            demo::DEMO_OPERATOR.1,
            site.keys
                .repository_key_file
                .with_file_name("passphrase")
                .display()
        ));
        return Ok(true);
    }
    say("   NOTE: the demo key file uses the backup crate's documented fast KDF parameters");
    say("   (KdfParams::insecure_for_tests) so that it opens instantly; a real site uses the");
    say(
        "   default (argon2id, 64 MiB, 3 passes). Its passphrase is a demo value written in a file.",
    );

    say("== 2. The backup operator logs in with a personal login and password");
    let log = Arc::new(nightly::open_audit(&site, clock.clone())?);
    let OperatorsConfig::Local { accounts_file } = &site.operators else {
        return Err("the demo uses local operator accounts".into());
    };
    let accounts = LocalAccounts::open(accounts_file, LocalOptions::default())?;
    let mut policy = RemoteAccessPolicy::builder();
    for lan in &site.remote_access.lan {
        policy = policy.lan(*lan);
    }
    let gate = AccessGate::new(accounts, policy.build()?, log.clone(), clock.clone());
    let workstation =
        ConnectionContext::new("10.20.1.15".parse()?).with_workstation("poste-exploitation-1");
    let wrong = gate
        .login(
            &Credentials::new(demo::DEMO_OPERATOR.0, "mot-de-passe-faux", ""),
            &workstation,
        )
        .await;
    say(&format!(
        "   wrong password: refused ({})",
        wrong
            .err()
            .map(|e| e.to_string())
            .unwrap_or_else(|| "ACCEPTED?!".into())
    ));
    let session = gate
        .login(
            &Credentials::new(demo::DEMO_OPERATOR.0, demo::DEMO_OPERATOR.1, ""),
            &workstation,
        )
        .await?;
    gate.require(&session.token, Permission::RunBackup).await?;
    let operator = Actor::new(session.info.username.clone(), session.info.profile.name());
    say(&format!(
        "   {} logged in from {} as {}",
        session.info.username,
        "poste-exploitation-1",
        session.info.profile.name()
    ));

    say(
        "== 3. The nightly backup: database to tonight's tape, application to the disk in building C",
    );
    let report = nightly::run(
        &site,
        log.clone(),
        operator.clone(),
        clock.clone(),
        &LogLines,
    )
    .await?;
    print!("{}", report.summary());
    if !report.ok {
        return Err(format!("the nightly backup failed: {:?}", report.failures()).into());
    }
    let Some(db) = report.database.clone() else {
        return Err("no database backup".into());
    };

    say("== 4. In the morning the tape leaves the server room for the offsite room");
    let locations = nightly::locations_of(&site);
    let mut register = LocationRegister::load(&site.tape.register)?;
    let custody = Custody {
        config: &locations,
        clock: clock.as_ref(),
        sink: log.as_ref(),
        host: &site.site.host,
    };
    let mut library = VirtualLibrary::open(library_dir(&site)?)?;
    for tape in &db.tapes {
        register
            .record_move(tape, Place::Offsite, &operator.user_id, &custody)
            .await?;
        register.save(&site.tape.register)?;
        library.take_out(tape)?;
        say(&format!(
            "   tape {tape} moved to {} by {}",
            site.locations.offsite_room, operator.user_id
        ));
    }
    gate.logout(&session.token).await?;

    say("== 5. Fire in the server room: the JFIV server is lost");
    let fire = clock.now();
    std::fs::remove_dir_all(&built.server)?;
    say("   deleted: the database, the application tree, the tape catalog and location register,");
    say("   the repository key file and its passphrase. Left: the tapes in the offsite room, the");
    say("   disk in building C, the audit log host, and the paper key in the safe.");

    say("== 6. Degraded procedure: rebuild a new server from the latest backup");
    let rto = Instant::now();
    let new_root = dir.join("nouveau-serveur");
    std::fs::create_dir_all(&new_root)?;
    let rebuilt = demo::rebuild_server(
        &site,
        &built.paper_key,
        &new_root,
        dir.join("etat-restauration"),
        log.clone(),
        &operator,
        clock.clone(),
    )
    .await?;
    let (plan, executed) = (&rebuilt.plan, &rebuilt.report);
    for (i, note) in rebuilt.notes.iter().enumerate() {
        if i == rebuilt.notes.len().saturating_sub(executed.steps.len()) {
            println!("{plan}");
        }
        say(note);
    }
    let rto_secs = rto.elapsed().as_secs_f64();

    say("== 7. Is the new server the old one?");
    let mut ok = executed.is_complete();
    let restored_db = new_root.join("srv/jfiv/data/jfiv.sqlite");
    let db_diffs = demo::compare_databases(&built.originals.join("jfiv.sqlite"), &restored_db)?;
    say(&format!(
        "   database: integrity_check {}, {}",
        demo::integrity_check(&restored_db)?,
        if db_diffs.is_empty() {
            "every table identical".to_owned()
        } else {
            db_diffs.join("; ")
        }
    ));
    ok &= db_diffs.is_empty();
    let skip_logs = |p: &Path| p.starts_with("opt/jfiv/logs");
    let mut tree_diffs = demo::compare_trees(
        &built.originals.join("tree/opt"),
        &new_root.join("opt"),
        &|p| skip_logs(&Path::new("opt").join(p)),
    )?;
    tree_diffs.extend(demo::compare_trees(
        &built.originals.join("tree/etc/jfiv"),
        &new_root.join("etc/jfiv"),
        &|_| false,
    )?);
    say(&format!(
        "   application files: {}",
        if tree_diffs.is_empty() {
            format!(
                "{} files identical (content, modes, symlinks)",
                built.tree.files - 1
            )
        } else {
            tree_diffs.join("; ")
        }
    ));
    ok &= tree_diffs.is_empty();

    say("== 8. The audit trail");
    let mut checkpoints = Vec::new();
    for entry in std::fs::read_dir(&site.audit.checkpoint_dir)? {
        checkpoints.push(Checkpoint::read_from(&entry?.path())?);
    }
    let verified = log.verify(&checkpoints).await?;
    say(&format!("   {verified}"));
    let trail = jfiv::audit::AuditSink::query(log.as_ref(), &jfiv::audit::Query::all()).await?;
    let mut counts = std::collections::BTreeMap::new();
    for r in &trail {
        *counts.entry(r.event.action.name()).or_insert(0u32) += 1;
    }
    say(&format!("   events: {counts:?}"));

    say("== 9. What it cost");
    let rpo = (fire - db.finished).num_milliseconds() as f64 / 1000.0;
    say(&format!(
        "   RPO: the data is as of the nightly backup, {rpo:.1} s before the fire (at the hospital: up to 24 h, the RPO is 26 h)"
    ));
    say(&format!(
        "   RTO: {rto_secs:.1} s from the paper key to a checked server (planned {:.1} s)",
        plan.estimated_rto_secs()
    ));
    say(&format!(
        "   whole demo: {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    if ok {
        say("RESULT: the restored server is identical to the original.");
    } else {
        say("RESULT: DIFFERENCES FOUND (see above).");
    }
    Ok(ok)
}

fn library_dir(site: &SiteConfig) -> Res<PathBuf> {
    match &site.tape.backend {
        jfiv::site::TapeBackend::Library(d) => Ok(d.clone()),
        _ => Err("the demo uses a virtual library".into()),
    }
}
