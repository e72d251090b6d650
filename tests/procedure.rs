//! The hospital's procedure, sentence by sentence, as executable scenarios.
//!
//! One module per part of the procedure (`procedure-jfiv.txt`); each test is named after the
//! sentence it proves and checks what a user would check: refused access, an audit record,
//! data identical after a restore.

// Setup helpers outside `#[test]` functions panic on failure, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use jfiv::audit::{Action, Actor, AuditSink, Clock, FileLog, ManualClock, Outcome, Query};
use jfiv::demo::{self, DemoSite, DemoSize, DemoTapes};
use jfiv::nightly::{self, LogLines, NightlyReport};
use jfiv::site::SiteConfig;

/// A Tuesday evening (a daily-pool night).
fn tuesday_night() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 3, 22, 0, 0).unwrap()
}

struct Site {
    _dir: tempfile::TempDir,
    built: DemoSite,
    site: SiteConfig,
    log: Arc<FileLog>,
    clock: Arc<ManualClock>,
}

async fn site() -> Site {
    site_with(&DemoSize::tiny(), &DemoTapes::demo()).await
}

async fn site_with(size: &DemoSize, tapes: &DemoTapes) -> Site {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(tuesday_night()));
    let built = demo::build_site_with(dir.path(), size, tapes, clock.clone())
        .await
        .unwrap();
    let site = SiteConfig::load(&built.config).unwrap();
    let log = Arc::new(nightly::open_audit(&site, clock.clone()).unwrap());
    Site {
        _dir: dir,
        built,
        site,
        log,
        clock,
    }
}

impl Site {
    async fn night(&self) -> NightlyReport {
        nightly::run(
            &self.site,
            self.log.clone(),
            Actor::new("nightly-backup", "backup-operator"),
            self.clock.clone(),
            &LogLines,
        )
        .await
        .unwrap()
    }

    async fn events(&self, action: Action) -> Vec<jfiv::audit::AuditEvent> {
        self.log
            .query(&Query::all())
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.event)
            .filter(|e| e.action == action)
            .collect()
    }
}

mod access_security {
    use super::*;
    use jfiv::audit::MemorySink;
    use jfiv::auth::{
        AccessGate, ConnectionContext, Credentials, ErrorKind, LocalAccounts, LocalOptions,
        Permission, Profile, RemoteAccessPolicy, SecretString,
    };

    async fn gate(dir: &Path) -> (AccessGate<LocalAccounts>, Arc<MemorySink>) {
        let accounts =
            LocalAccounts::open(dir.join("accounts.json"), LocalOptions::default()).unwrap();
        accounts
            .create_account(
                "s.durand",
                Profile::Secretary,
                &SecretString::from("Accueil-AMP#2026"),
            )
            .unwrap();
        accounts
            .create_account(
                "dr.martin",
                Profile::Clinician,
                &SecretString::from("Ponction-J14#Bois"),
            )
            .unwrap();
        let policy = RemoteAccessPolicy::builder()
            .lan("10.20.0.0/16".parse().unwrap())
            .build()
            .unwrap();
        let sink = Arc::new(MemorySink::new());
        let clock = Arc::new(ManualClock::new(tuesday_night()));
        (AccessGate::new(accounts, policy, sink.clone(), clock), sink)
    }

    fn lan() -> ConnectionContext {
        ConnectionContext::new("10.20.4.2".parse().unwrap()).with_workstation("amp-accueil-1")
    }

    #[tokio::test]
    async fn access_is_only_by_personal_login_and_password() {
        let dir = tempfile::tempdir().unwrap();
        let (gate, sink) = gate(dir.path()).await;
        let ok = gate
            .login(
                &Credentials::new("s.durand", "Accueil-AMP#2026", ""),
                &lan(),
            )
            .await
            .unwrap();
        assert_eq!(ok.info.username, "s.durand");
        let wrong = gate
            .login(&Credentials::new("s.durand", "accueil", ""), &lan())
            .await
            .unwrap_err();
        let unknown = gate
            .login(
                &Credentials::new("secretariat", "Accueil-AMP#2026", ""),
                &lan(),
            )
            .await
            .unwrap_err();
        assert_eq!(
            wrong.to_string(),
            unknown.to_string(),
            "no hint whether the user exists"
        );
        let trail = sink.query(&Query::all()).await.unwrap();
        let by_user: Vec<(&str, Action)> = trail
            .iter()
            .map(|r| (r.event.actor.user_id.as_str(), r.event.action))
            .collect();
        assert!(
            by_user.contains(&("s.durand", Action::LoginSuccess)),
            "{by_user:?}"
        );
        assert!(
            by_user.contains(&("s.durand", Action::LoginFailure)),
            "{by_user:?}"
        );
        assert!(
            by_user.contains(&("secretariat", Action::LoginFailure)),
            "{by_user:?}"
        );
    }

    #[tokio::test]
    async fn what_a_user_may_do_depends_on_their_profile() {
        let dir = tempfile::tempdir().unwrap();
        let (gate, _) = gate(dir.path()).await;
        let secretary = gate
            .login(
                &Credentials::new("s.durand", "Accueil-AMP#2026", ""),
                &lan(),
            )
            .await
            .unwrap();
        let clinician = gate
            .login(
                &Credentials::new("dr.martin", "Ponction-J14#Bois", ""),
                &lan(),
            )
            .await
            .unwrap();
        let denied = gate
            .require(&secretary.token, Permission::ReadMedical)
            .await
            .unwrap_err();
        assert_eq!(denied.kind(), ErrorKind::PermissionDenied);
        gate.require(&clinician.token, Permission::ReadMedical)
            .await
            .unwrap();
        gate.require(&secretary.token, Permission::WriteAdministrative)
            .await
            .unwrap();
    }
}

mod remote_access {
    use super::*;
    use jfiv::audit::MemorySink;
    use jfiv::auth::{
        AccessGate, ConnectionContext, Credentials, LocalAccounts, LocalOptions, Profile,
        RemoteAccessPolicy, SecretString,
    };
    use jfiv::site::FileChecks;

    #[tokio::test]
    async fn remote_users_outside_the_vpn_pool_are_refused_before_any_password_check() {
        let dir = tempfile::tempdir().unwrap();
        let accounts =
            LocalAccounts::open(dir.path().join("a.json"), LocalOptions::default()).unwrap();
        accounts
            .create_account(
                "dr.bernard",
                Profile::Clinician,
                &SecretString::from("Cabinet-Gyneco#1"),
            )
            .unwrap();
        let policy = RemoteAccessPolicy::builder()
            .lan("10.20.0.0/16".parse().unwrap())
            .build()
            .unwrap();
        let sink = Arc::new(MemorySink::new());
        let gate = AccessGate::new(
            accounts,
            policy,
            sink.clone(),
            Arc::new(ManualClock::new(tuesday_night())),
        );
        let internet = ConnectionContext::new("203.0.113.9".parse().unwrap());
        let refused = gate
            .login(
                &Credentials::new("dr.bernard", "Cabinet-Gyneco#1", ""),
                &internet,
            )
            .await;
        assert!(
            refused.is_err(),
            "a connection from the internet was let in"
        );
        let trail = sink.query(&Query::all()).await.unwrap();
        assert!(
            trail
                .iter()
                .any(|r| r.event.action == Action::AccessRefused
                    && r.event.outcome == Outcome::Refused),
            "{trail:?}"
        );
        assert!(!trail.iter().any(|r| r.event.action == Action::LoginSuccess));
    }

    #[test]
    fn remote_users_need_vpn_and_personal_certificate_so_a_vpn_pool_needs_a_ca_and_its_crl() {
        let text = include_str!("../examples/hospital.toml")
            .replace("ca_file = \"/etc/jfiv/vpn-ca.der\"\n", "")
            .replace("crl_file = \"/etc/jfiv/vpn-ca.crl.der\"\n", "");
        let err =
            SiteConfig::from_toml(&text, Path::new("hospital.toml"), FileChecks::Skip).unwrap_err();
        assert!(
            err.to_string()
                .contains("a VPN pool needs ca_file and crl_file"),
            "{err}"
        );
    }
}

mod daily_database_backup_to_tape {
    use super::*;
    use jfiv::backup::tape::Catalog;

    #[tokio::test]
    async fn database_is_backed_up_daily_to_tape() {
        let s = site().await;
        let report = s.night().await;
        assert!(report.ok, "{}", report.summary());
        let db = report.database.clone().unwrap();
        assert!(db.verified, "the tape was read back and authenticated");
        assert_eq!(db.row_counts["patients"], 20);
        let catalog = Catalog::load(&s.site.tape.catalog).unwrap();
        let session = catalog.latest_complete("jfiv-db").unwrap();
        assert!(session.verified());
        assert_eq!(session.catalog.volumes[0].tape, db.tape);
        assert!(
            db.tape.starts_with("LEB00"),
            "a daily tape on a Tuesday: {}",
            db.tape
        );
        let verified = s.events(Action::BackupVerified).await;
        assert!(
            verified
                .iter()
                .any(|e| e.details.contains(&db.tape) && e.outcome == Outcome::Success)
        );
        assert!(!s.events(Action::TapeLoaded).await.is_empty());
    }

    #[tokio::test]
    async fn each_night_gets_its_own_tape_and_a_tape_under_retention_is_not_overwritten() {
        let s = site().await;
        let first = s.night().await.database.unwrap().tape;
        s.clock.advance(Duration::days(1));
        let second = s.night().await.database.unwrap().tape;
        assert_ne!(first, second, "last night's tape is still under retention");
        let catalog = Catalog::load(&s.site.tape.catalog).unwrap();
        assert_eq!(catalog.sessions.len(), 2, "both nights are on tape");
    }
}

mod a_backup_larger_than_a_tape {
    use super::*;
    use jfiv::backup::tape::{Catalog, Custody, LocationRegister, Place};
    use jfiv::monitor::{Status, Thresholds, evaluate, gather};

    /// A database of about 5 MB after compression, on 8 MiB cartridges that warn at 3 MiB.
    fn big_database() -> DemoSize {
        DemoSize {
            patients: 2000,
            binary_bytes: 64 << 10,
            reports: 5,
        }
    }

    fn tiny_tapes(daily: usize) -> DemoTapes {
        DemoTapes {
            capacity: 8 << 20,
            early_warning_zone: 5 << 20,
            daily,
        }
    }

    #[tokio::test]
    async fn a_database_backup_larger_than_tonights_tape_continues_on_the_next_tape_of_the_pool() {
        let s = site_with(&big_database(), &tiny_tapes(3)).await;
        let report = s.night().await;
        assert!(report.ok, "{}", report.summary());
        let db = report.database.clone().unwrap();
        assert_eq!(db.tapes.len(), 2, "{db:?}");
        assert_eq!(db.tapes[0], db.tape);
        assert!(db.tapes.iter().all(|t| t.starts_with("LEB00")), "{db:?}");
        assert!(db.verified, "both tapes read back and authenticated");
        assert!(
            report.summary().contains(&db.tapes.join(" + ")),
            "{}",
            report.summary()
        );
        // The catalog, the register and the audit trail know both tapes.
        let catalog = Catalog::load(&s.site.tape.catalog).unwrap();
        let session = catalog.latest_complete("jfiv-db").unwrap();
        assert!(session.verified());
        let on_tape: Vec<&str> = session
            .catalog
            .volumes
            .iter()
            .map(|v| v.tape.as_str())
            .collect();
        assert_eq!(on_tape, db.tapes);
        let register = LocationRegister::load(&s.site.tape.register).unwrap();
        assert_eq!(register.place_of(&db.tapes[0]), Some(Place::ServerRoom));
        assert_eq!(register.place_of(&db.tapes[1]), Some(Place::Drive));
        let loaded = s.events(Action::TapeLoaded).await;
        for tape in &db.tapes {
            assert!(
                loaded
                    .iter()
                    .any(|e| e.object.as_deref() == Some(tape.as_str())),
                "{tape} loaded: {loaded:?}"
            );
        }
        // What went onto the tapes: read the session back across both, with the key.
        let key = nightly::open_key(&s.site).unwrap();
        let library = jfiv::backup::tape::VirtualLibrary::open(s.built.dir.join("vtl")).unwrap();
        let mut changer = jfiv::backup::tape::LibraryChanger::new(
            &library,
            db.tapes.clone(),
            jfiv::backup::tape::ChangerPurpose::Read,
        );
        let checked = jfiv::backup::tape::verify_session(
            Box::new(library.load(&db.tapes[0]).unwrap()),
            session.catalog.volumes[0].file,
            &mut changer,
            &key,
            s.clock.as_ref(),
        )
        .unwrap();
        assert!(checked.result.ok, "{:?}", checked.result);
        let backed_up = checked.manifests[0]
            .entries
            .iter()
            .find(|e| e.path == "jfiv.sqlite")
            .and_then(|e| e.blake3.clone())
            .unwrap();
        drop(library);
        // In the morning the check wants both tapes out of the server room.
        s.clock
            .set(Utc.with_ymd_and_hms(2026, 3, 4, 10, 0, 0).unwrap());
        // The test's disk target shares the host's file system: its usage is not the point.
        let thresholds = Thresholds {
            disk_warn_percent: 100,
            disk_critical_percent: 100,
            ..Thresholds::of(&s.site)
        };
        let eval = evaluate(&gather(&s.site, s.clock.now()), &thresholds, s.clock.now());
        assert_eq!(eval.status, Status::Critical, "{}", eval.output());
        for tape in &db.tapes {
            assert!(
                eval.status_line()
                    .contains(&format!("tape {tape} written last night is still in")),
                "{}",
                eval.status_line()
            );
        }
        let locations = nightly::locations_of(&s.site);
        let custody = Custody {
            config: &locations,
            clock: s.clock.as_ref(),
            sink: s.log.as_ref(),
            host: "jfiv-srv01",
        };
        let mut register = register;
        let mut library =
            jfiv::backup::tape::VirtualLibrary::open(s.built.dir.join("vtl")).unwrap();
        for tape in &db.tapes {
            register
                .record_move(tape, Place::Offsite, "m.lefevre", &custody)
                .await
                .unwrap();
            library.take_out(tape).unwrap();
        }
        register.save(&s.site.tape.register).unwrap();
        let eval = evaluate(&gather(&s.site, s.clock.now()), &thresholds, s.clock.now());
        assert_eq!(eval.status, Status::Ok, "{}", eval.output());

        // The server burns; the restore reads the session from both tapes.
        std::fs::remove_dir_all(&s.built.server).unwrap();
        let new_root = s.built.dir.join("nouveau-serveur");
        std::fs::create_dir_all(&new_root).unwrap();
        let rebuilt = demo::rebuild_server(
            &s.site,
            &s.built.paper_key,
            &new_root,
            s.built.dir.join("restore-state"),
            s.log.clone(),
            &Actor::new("m.lefevre", "backup-operator"),
            s.clock.clone(),
        )
        .await
        .unwrap();
        assert!(rebuilt.report.is_complete(), "{:?}", rebuilt.report.steps);
        let original = s.built.originals.join("jfiv.sqlite");
        let restored = new_root.join("srv/jfiv/data/jfiv.sqlite");
        assert_eq!(
            blake3::hash(&std::fs::read(&restored).unwrap())
                .to_hex()
                .to_string(),
            backed_up,
            "the restored database file is bit-identical to the copy written on the two tapes"
        );
        assert!(
            demo::compare_databases(&original, &restored)
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn with_a_pool_of_one_tape_a_backup_larger_than_the_tape_fails_and_says_why() {
        let s = site_with(&big_database(), &tiny_tapes(1)).await;
        let report = s.night().await;
        assert!(!report.ok);
        assert_eq!(report.exit_code(), 1, "nightly_backup exits 1");
        assert_eq!(
            report.failures(),
            ["database-to-tape"],
            "{}",
            report.summary()
        );
        assert!(report.database.is_none());
        assert!(
            report.application.as_ref().unwrap().verified,
            "the disk backup still ran"
        );
        let step = &report.steps[0];
        assert!(
            step.details.contains("LEB001L6")
                && step.details.contains("no tape of pool daily")
                && step
                    .details
                    .contains("no other tape of pool daily could continue"),
            "{}",
            step.details
        );
        let saved: NightlyReport =
            serde_json::from_slice(&std::fs::read(nightly::last_report_path(&s.site)).unwrap())
                .unwrap();
        assert_eq!(saved, report);
        let failed = s.events(Action::BackupFailed).await;
        assert!(
            failed
                .iter()
                .any(|e| e.object.as_deref() == Some("LEB001L6") && e.outcome == Outcome::Failure),
            "{failed:?}"
        );
        // The catalog holds the session as incomplete, never as a backup.
        let catalog = Catalog::load(&s.site.tape.catalog).unwrap();
        assert!(catalog.latest_complete("jfiv-db").is_none());
        assert!(
            catalog.sessions.values().any(|s| !s.complete),
            "{:?}",
            catalog.sessions
        );
        let eval = evaluate(
            &gather(&s.site, s.clock.now()),
            &Thresholds::of(&s.site),
            s.clock.now(),
        );
        assert_eq!(eval.status, Status::Critical, "{}", eval.output());
        assert!(
            eval.status_line()
                .contains("jfiv-db has no successful verified backup"),
            "{}",
            eval.status_line()
        );
    }
}

mod daily_application_backup_to_disk {
    use super::*;
    use jfiv::backup::{DiskTarget, list_snapshots};

    #[tokio::test]
    async fn application_server_is_backed_up_daily_to_disks_in_another_room() {
        let s = site().await;
        let report = s.night().await;
        let app = report.application.clone().unwrap();
        assert!(app.verified, "{}", report.summary());
        assert!(
            !s.site.disk.dir.starts_with(&s.built.server),
            "the disk is not in the server"
        );
        std::fs::write(
            s.built.server.join("etc/jfiv/jfiv.conf"),
            b"listen = 0.0.0.0:9443\n",
        )
        .unwrap();
        s.clock.advance(Duration::days(1));
        let second = s.night().await.application.unwrap();
        assert!(
            second.files_reused > 0,
            "unchanged files are not read again"
        );
        assert!(
            second.files_reused < second.files,
            "the changed file is stored"
        );
        let key = nightly::open_key(&s.site).unwrap();
        let target = DiskTarget::open_read_only(&s.site.disk.dir).unwrap();
        let snapshots = list_snapshots(&target, &key).await.unwrap();
        assert_eq!(
            snapshots
                .iter()
                .filter(|s| s.source.name == "jfiv-app")
                .count(),
            2
        );
    }
}

mod nightly_report {
    use super::*;
    use jfiv::monitor::{Status, Thresholds, evaluate, gather};

    #[tokio::test]
    async fn a_missing_disk_fails_the_night_without_costing_the_tape_backup() {
        let s = site().await;
        let unmounted = s.site.disk.dir.with_extension("unmounted");
        std::fs::rename(&s.site.disk.dir, &unmounted).unwrap();
        let report = s.night().await;
        assert!(!report.ok);
        assert_eq!(
            report.failures(),
            ["application-to-disk"],
            "{}",
            report.summary()
        );
        assert!(
            report.database.as_ref().unwrap().verified,
            "the tape backup still ran"
        );
        let saved: NightlyReport =
            serde_json::from_slice(&std::fs::read(nightly::last_report_path(&s.site)).unwrap())
                .unwrap();
        assert_eq!(saved, report, "the JSON report is what the job did");
        let failed = s.events(Action::BackupFailed).await;
        assert!(failed.is_empty() || failed.iter().all(|e| e.outcome == Outcome::Failure));
        let eval = evaluate(
            &gather(&s.site, s.clock.now()),
            &Thresholds::of(&s.site),
            s.clock.now(),
        );
        assert_eq!(eval.status, Status::Critical, "{}", eval.output());
        assert!(
            eval.status_line().contains("disk target unavailable"),
            "{}",
            eval.status_line()
        );
        assert!(
            eval.status_line()
                .contains("jfiv-app has no successful verified backup")
        );
    }
}

mod disk_damage {
    use super::*;

    #[tokio::test]
    async fn a_disk_pack_with_a_damaged_index_fails_the_nights_verification_and_is_named() {
        let s = site().await;
        assert!(s.night().await.ok);
        // Damage the end (the index) of one pack of the disk target.
        let packs = s.site.disk.dir.join("packs");
        let pack = std::fs::read_dir(&packs)
            .unwrap()
            .map(|e| e.unwrap().path())
            .next()
            .unwrap();
        let mut bytes = std::fs::read(&pack).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        std::fs::write(&pack, &bytes).unwrap();
        s.clock.advance(Duration::days(1));
        let report = s.night().await;
        assert!(!report.ok, "{}", report.summary());
        let verify = report
            .steps
            .iter()
            .find(|st| st.name == "disk-verify")
            .unwrap();
        assert!(!verify.ok);
        let name = pack.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            verify.details.contains("damaged pack") && verify.details.contains(&name),
            "{}",
            verify.details
        );
        // The night's backup still went to the disk, but is not counted as verified (the
        // monitoring check then sees the source age past its RPO).
        let app = report.application.as_ref().unwrap();
        assert!(app.files > 0 && !app.verified);
    }
}

mod offsite_storage {
    use super::*;
    use jfiv::backup::tape::{Custody, LocationRegister, Place};
    use jfiv::monitor::{Status, Thresholds, evaluate, gather};

    #[tokio::test]
    async fn tapes_are_stored_away_from_the_server_room() {
        let s = site().await;
        let db = s.night().await.database.unwrap();
        // Next morning, 10:00, after the 09:30 deadline: the tape is still in the drive.
        s.clock
            .set(Utc.with_ymd_and_hms(2026, 3, 4, 10, 0, 0).unwrap());
        // The test's disk target shares the host's file system: its usage is not the point.
        let thresholds = Thresholds {
            disk_warn_percent: 100,
            disk_critical_percent: 100,
            ..Thresholds::of(&s.site)
        };
        let eval = evaluate(&gather(&s.site, s.clock.now()), &thresholds, s.clock.now());
        assert_eq!(eval.status, Status::Critical, "{}", eval.output());
        assert!(eval.status_line().contains(&format!(
            "tape {} written last night is still in the drive",
            db.tape
        )));
        // The operator takes it to the offsite room.
        let locations = nightly::locations_of(&s.site);
        let mut register = LocationRegister::load(&s.site.tape.register).unwrap();
        register
            .record_move(
                &db.tape,
                Place::Offsite,
                "m.lefevre",
                &Custody {
                    config: &locations,
                    clock: s.clock.as_ref(),
                    sink: s.log.as_ref(),
                    host: "jfiv-srv01",
                },
            )
            .await
            .unwrap();
        register.save(&s.site.tape.register).unwrap();
        let eval = evaluate(&gather(&s.site, s.clock.now()), &thresholds, s.clock.now());
        assert!(
            !eval.status_line().contains("still in"),
            "{}",
            eval.output()
        );
        assert_eq!(eval.status, Status::Ok, "{}", eval.output());
        let moves = s.events(Action::TapeMoved).await;
        assert!(
            moves
                .iter()
                .any(|e| e.object.as_deref() == Some(db.tape.as_str())
                    && e.actor.user_id == "m.lefevre"
                    && e.details.contains("Local archives"))
        );
    }

    #[tokio::test]
    async fn the_monitoring_check_sees_a_backup_older_than_the_rpo() {
        let s = site().await;
        s.night().await;
        s.clock.advance(Duration::hours(30));
        let eval = evaluate(
            &gather(&s.site, s.clock.now()),
            &Thresholds::of(&s.site),
            s.clock.now(),
        );
        assert_eq!(eval.status.exit_code(), 1, "{}", eval.output());
        assert!(
            eval.status_line().contains("age_db=30.0h;26;48"),
            "{}",
            eval.status_line()
        );
    }
}

mod degraded_procedure {
    use super::*;

    #[tokio::test]
    async fn a_new_server_can_be_rebuilt_from_the_latest_backup() {
        let s = site().await;
        let report = s.night().await;
        assert!(report.ok, "{}", report.summary());
        // The server burns with its catalog, register and key file.
        std::fs::remove_dir_all(&s.built.server).unwrap();
        let new_root = s.built.dir.join("nouveau-serveur");
        std::fs::create_dir_all(&new_root).unwrap();
        let rebuilt = demo::rebuild_server(
            &s.site,
            &s.built.paper_key,
            &new_root,
            s.built.dir.join("restore-state"),
            s.log.clone(),
            &Actor::new("m.lefevre", "backup-operator"),
            s.clock.clone(),
        )
        .await
        .unwrap();
        assert!(rebuilt.report.is_complete(), "{:?}", rebuilt.report.steps);
        let diffs = demo::compare_databases(
            &s.built.originals.join("jfiv.sqlite"),
            &new_root.join("srv/jfiv/data/jfiv.sqlite"),
        )
        .unwrap();
        assert!(diffs.is_empty(), "{diffs:?}");
        let skip_logs = |p: &Path| p.starts_with("jfiv/logs");
        let diffs = demo::compare_trees(
            &s.built.originals.join("tree/opt"),
            &new_root.join("opt"),
            &skip_logs,
        )
        .unwrap();
        assert!(diffs.is_empty(), "{diffs:?}");
        assert!(!s.events(Action::RestoreFinished).await.is_empty());
        let verified = s.log.verify(&[]).await.unwrap();
        assert!(verified.records > 10);
    }
}

mod the_examples_read_the_site_configuration {
    use super::*;
    use jfiv::audit::Checkpoint;
    use jfiv::site::{AccessPolicyError, FileChecks, TapeBackend};
    use rcgen::{
        BasicConstraints, CertificateParams, CertificateRevocationListParams, IsCa, KeyIdMethod,
        KeyPair, KeyUsagePurpose, SerialNumber, date_time_ymd,
    };
    use std::path::PathBuf;

    const SAMPLE: &str = include_str!("../examples/hospital.toml");

    fn sample() -> SiteConfig {
        SiteConfig::from_toml(
            SAMPLE,
            Path::new("/etc/jfiv/hospital.toml"),
            FileChecks::Skip,
        )
        .unwrap()
    }

    #[test]
    fn the_sample_configuration_gives_each_example_what_it_needs() {
        let site = sample();
        // audit: the log, its keys, the exported checkpoints.
        assert_eq!(site.audit.dir, PathBuf::from("/var/log/jfiv/audit"));
        assert_eq!(site.audit.key_file, PathBuf::from("/etc/jfiv/audit.keys"));
        assert_eq!(
            site.audit.checkpoint_dir,
            PathBuf::from("/mnt/sauvegarde-batiment-c/jfiv/audit-checkpoints"),
            "the checkpoints go to the other room by default"
        );
        // remote_login: the accounts and the networks.
        assert_eq!(
            site.accounts_file(),
            Some(Path::new("/etc/jfiv/operators.json"))
        );
        assert_eq!(site.remote_access.lan, ["10.20.0.0/16".parse().unwrap()]);
        assert_eq!(
            site.remote_access.vpn_pool,
            ["10.99.8.0/22".parse().unwrap()]
        );
        assert_eq!(
            site.remote_access.ca_file.as_deref(),
            Some(Path::new("/etc/jfiv/vpn-ca.der"))
        );
        // tape: a real drive (no virtual library), the pools and the register.
        assert_eq!(site.library_dir(), None);
        assert_eq!(site.tape.backend, TapeBackend::Device("/dev/nst0".into()));
        assert_eq!(nightly::rotation_of(&site).daily_retention_days, 7);
        assert_eq!(
            site.tape.register,
            PathBuf::from("/var/lib/jfiv/tape-locations.json")
        );
        // degraded_restore: the disk, the key, where the database goes under a new root.
        assert_eq!(
            site.disk.dir,
            PathBuf::from("/mnt/sauvegarde-batiment-c/jfiv")
        );
        assert_eq!(
            site.keys.repository_key_file,
            PathBuf::from("/etc/jfiv/backup-repository.key")
        );
        assert_eq!(
            site.database_dir_in_server(),
            Some(PathBuf::from("srv/jfiv/data"))
        );
        assert_eq!(site.application.name, "jfiv-app");
        assert_eq!(site.database.name(), "jfiv-db");
    }

    #[test]
    fn the_remote_access_policy_is_built_from_the_sites_ca_and_crl() {
        let dir = tempfile::tempdir().unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = date_time_ymd(2025, 1, 1);
        params.not_after = date_time_ymd(2035, 1, 1);
        let ca = params.self_signed(&key).unwrap();
        let crl = CertificateRevocationListParams {
            this_update: date_time_ymd(2026, 1, 1),
            next_update: date_time_ymd(2027, 1, 1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: Vec::new(),
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&ca, &key)
        .unwrap();
        let (ca_file, crl_file) = (
            dir.path().join("vpn-ca.der"),
            dir.path().join("vpn-ca.crl.der"),
        );
        std::fs::write(&ca_file, ca.der()).unwrap();
        std::fs::write(&crl_file, crl.der()).unwrap();
        let text = SAMPLE
            .replace("/etc/jfiv/vpn-ca.der", &ca_file.display().to_string())
            .replace("/etc/jfiv/vpn-ca.crl.der", &crl_file.display().to_string());
        let site =
            SiteConfig::from_toml(&text, Path::new("hospital.toml"), FileChecks::Skip).unwrap();
        let policy = site.remote_access_policy().unwrap();
        assert!(policy.is_local("10.20.4.2".parse().unwrap()));
        assert!(policy.is_remote("10.99.9.7".parse().unwrap()));
        assert!(!policy.is_local("203.0.113.9".parse().unwrap()));
        assert!(!policy.is_remote("203.0.113.9".parse().unwrap()));
        // A PEM file is named, with the conversion to do.
        std::fs::write(&ca_file, ca.pem()).unwrap();
        let err = site.remote_access_policy().unwrap_err();
        assert!(matches!(err, AccessPolicyError::Pem { .. }), "{err}");
        assert!(err.to_string().contains("openssl x509"), "{err}");
        // A missing CRL too.
        std::fs::remove_file(&crl_file).unwrap();
        std::fs::write(&ca_file, ca.der()).unwrap();
        let err = site.remote_access_policy().unwrap_err();
        assert!(matches!(err, AccessPolicyError::Read { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_demo_sites_configuration_gives_the_examples_a_library_accounts_and_checkpoints() {
        let s = site().await;
        assert_eq!(
            s.site.library_dir(),
            Some(s.built.dir.join("vtl").as_path())
        );
        let accounts = s.site.accounts_file().unwrap();
        assert!(accounts.exists(), "{}", accounts.display());
        let policy = s.site.remote_access_policy().unwrap();
        assert!(policy.is_local("10.20.1.15".parse().unwrap()));
        assert_eq!(
            s.site.database_dir_in_server(),
            Some(PathBuf::from("srv/jfiv/data"))
        );
        assert!(s.site.audit_checkpoint_files().unwrap().is_empty());
        s.night().await;
        let files = s.site.audit_checkpoint_files().unwrap();
        assert_eq!(files.len(), 1, "{files:?}");
        let checkpoints: Vec<Checkpoint> = files
            .iter()
            .map(|f| Checkpoint::read_from(f).unwrap())
            .collect();
        let verified = s.log.verify(&checkpoints).await.unwrap();
        assert!(verified.records >= checkpoints[0].records);
    }
}
