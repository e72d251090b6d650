//! Plays the access scenarios of the hospital's procedure against local accounts and a
//! throwaway VPN certificate authority, then prints the audit trail.
//!
//! ```sh
//! cargo run --release --example remote_login
//! # one login against a site's accounts and remote-access policy, audited in its audit log
//! # (the password is read from standard input, never from the command line):
//! cargo run --release --example remote_login -- --config /etc/jfiv/hospital.toml \
//!     --user m.lefevre --from 10.20.1.15 < password-file
//! ```
//!
//! Without `--config`, everything happens in a temporary directory, on a simulated clock (a day
//! in June 2026). The process exits with status 1 if any scenario ends differently from what the
//! procedure expects.

use std::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use clap::Parser;
use jfiv::audit::{AuditSink, ManualClock, MemorySink, Origin, Query};
use jfiv::auth::{
    AccessGate, ConnectionContext, Credentials, Error as AuthError, LocalAccounts, LocalOptions,
    Profile, RemoteAccessPolicy, SecretString,
};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SerialNumber, date_time_ymd,
};
use std::net::IpAddr;

type CertificateDer = jfiv::auth::CertificateDer<'static>;

/// Plays the JFIV access scenarios (secretary on the LAN; gynecologist through the VPN with her
/// personal certificate, with a colleague's, with a revoked one; a login from outside the VPN
/// pool; a password-guessing run that gets throttled then locked) against local accounts and a
/// throwaway CA in a temporary directory, then prints the audit trail. Exits 1 if any outcome
/// differs from the expected one.
///
/// With `--config FILE` (the site configuration, `examples/hospital.toml` format) it instead
/// tries one login against the site: its local accounts (`[operators] accounts_file`), its
/// remote-access policy (`[remote_access]`: LAN ranges, VPN pools, the VPN CA and its CRL, in
/// DER) and its audit log (`[audit]`), for `--user` connecting from `--from`, with the
/// certificate chain of `--cert` for a VPN address. The password is read from the first line of
/// standard input. Exits 0 when a session opens, 1 when the login is refused.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Args {
    /// Print the audit trail as JSON lines instead of a table.
    #[arg(long)]
    json: bool,
    /// The site configuration file: try one login against the site instead of the scenarios.
    #[arg(long)]
    config: Option<PathBuf>,
    /// With --config: the personal login name.
    #[arg(long, requires = "config")]
    user: Option<String>,
    /// With --config: the address the connection comes from.
    #[arg(long, requires = "config")]
    from: Option<IpAddr>,
    /// With --config: the client certificate (DER), then its intermediates (repeatable).
    #[arg(long, requires = "config")]
    cert: Vec<PathBuf>,
    /// With --config: the workstation name recorded in the audit trail.
    #[arg(long, requires = "config")]
    workstation: Option<String>,
}

/// `--config`: one audited login against the site's accounts and remote-access policy.
async fn site_login(args: &Args, config: &std::path::Path) -> Result<ExitCode, Box<dyn Error>> {
    use jfiv::audit::Clock;
    let site = jfiv::site::SiteConfig::load(config)?;
    let user = args.user.as_deref().ok_or("--config needs --user")?;
    let from = args.from.ok_or("--config needs --from ADDRESS")?;
    let accounts_file = site.accounts_file().ok_or(
        "the site's operators log in with Oracle ([operators] oracle_connect): this example only tries local accounts (not implemented yet for Oracle operators)",
    )?;
    let clock: Arc<dyn Clock> = Arc::new(jfiv::audit::SystemClock);
    let accounts = LocalAccounts::open(accounts_file, LocalOptions::default())?;
    let policy = site.remote_access_policy()?;
    let log = Arc::new(jfiv::nightly::open_audit(&site, clock.clone())?);
    let before = log.records();
    let gate = AccessGate::new(accounts, policy, log.clone(), clock);
    println!(
        "site {}: LAN {:?}, VPN pools {:?}, CA {}",
        site.site.name,
        site.remote_access.lan,
        site.remote_access.vpn_pool,
        site.remote_access
            .ca_file
            .as_ref()
            .map_or("none".into(), |p| p.display().to_string())
    );
    let mut password = zeroize::Zeroizing::new(String::new());
    std::io::stdin().read_line(&mut password)?;
    let mut context = ConnectionContext::new(from);
    if let Some(ws) = &args.workstation {
        context = context.with_workstation(ws.clone());
    }
    if !args.cert.is_empty() {
        let chain = args
            .cert
            .iter()
            .map(|p| std::fs::read(p).map(CertificateDer::from))
            .collect::<Result<Vec<_>, _>>()?;
        context = context.with_client_chain(chain);
    }
    let result = gate
        .login(
            &Credentials::new(user, password.trim_end_matches(['\r', '\n']), ""),
            &context,
        )
        .await;
    println!("{user} from {from}: {}", outcome_text(&result));
    println!("audit trail ({}):", site.audit.dir.display());
    for rec in log.query(&Query::all()).await? {
        if rec.seq >= before {
            println!("  {rec}");
        }
    }
    match result {
        Ok(session) => {
            gate.logout(&session.token).await?;
            Ok(ExitCode::SUCCESS)
        }
        Err(_) => Ok(ExitCode::FAILURE),
    }
}

/// What the procedure says must happen.
#[derive(Debug)]
enum Expect {
    /// A session with this profile.
    Session(Profile),
    /// Refused before the password, for this reason code.
    Refused(&'static str),
    /// The generic "invalid credentials", whose audited reason starts with this.
    Invalid(&'static str),
}

struct Pki {
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

impl Pki {
    fn new() -> Result<Self, Box<dyn Error>> {
        let ca_key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "Hopital Prive Le Bois - VPN CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = date_time_ymd(2025, 1, 1);
        params.not_after = date_time_ymd(2035, 1, 1);
        let ca = params.self_signed(&ca_key)?;
        Ok(Self { ca, ca_key })
    }

    /// A personal client certificate for `user` (CN = login name), serial `serial`.
    fn personal(&self, user: &str, serial: u64) -> Result<CertificateDer, Box<dyn Error>> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, user);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.not_before = date_time_ymd(2026, 1, 1);
        params.not_after = date_time_ymd(2027, 1, 1);
        params.serial_number = Some(SerialNumber::from(serial));
        Ok(params
            .signed_by(&key, &self.ca, &self.ca_key)?
            .der()
            .clone())
    }

    fn crl(&self, revoked: &[u64]) -> Result<Vec<u8>, Box<dyn Error>> {
        let params = CertificateRevocationListParams {
            this_update: date_time_ymd(2026, 5, 1),
            next_update: date_time_ymd(2026, 7, 1),
            crl_number: SerialNumber::from(7u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|&s| RevokedCertParams {
                    serial_number: SerialNumber::from(s),
                    revocation_time: date_time_ymd(2026, 4, 2),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        Ok(params.signed_by(&self.ca, &self.ca_key)?.der().to_vec())
    }
}

fn outcome_text(result: &Result<jfiv::auth::Session, AuthError>) -> String {
    match result {
        Ok(s) => format!("session opened, profile {}", s.info.profile),
        Err(e) => format!("refused: {e}"),
    }
}

fn matches(expect: &Expect, result: &Result<jfiv::auth::Session, AuthError>) -> bool {
    match (expect, result) {
        (Expect::Session(p), Ok(s)) => s.info.profile == *p,
        (Expect::Refused(code), Err(AuthError::AccessRefused(r))) => r.code() == *code,
        (Expect::Invalid(reason), Err(e)) => e
            .failure_reason()
            .is_some_and(|r| r.to_string().starts_with(reason)),
        _ => false,
    }
}

#[tokio::main]
async fn main() -> Result<ExitCode, Box<dyn Error>> {
    let args = Args::parse();
    if let Some(config) = args.config.clone() {
        return site_login(&args, &config).await;
    }
    let dir = tempfile::tempdir()?;
    let start: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-06-01T08:30:00Z")?.into();
    let clock = Arc::new(ManualClock::new(start));

    // Accounts (argon2id at the OWASP floor), as the DBA would issue them.
    let accounts = LocalAccounts::open_with(
        dir.path().join("accounts.json"),
        LocalOptions::default(),
        clock.clone(),
        Arc::new(jfiv::auth::Randomness::os()),
    )?;
    let users = [
        ("secr.durand", Profile::Secretary, "Accueil-AMP#2026"),
        ("dr.martin", Profile::Clinician, "Ovocyte-42-Lune!"),
        ("dr.bernard", Profile::Clinician, "Echo-Pelvienne#9"),
        ("bio.petit", Profile::Biologist, "Spermo-Labo#2026"),
        ("admin.it", Profile::ItAdministrator, "Salle-Serveur#77"),
    ];
    for (user, profile, password) in users {
        accounts.create_account(user, profile, &SecretString::from(password.to_owned()))?;
    }
    let password_of = |user: &str| {
        users
            .iter()
            .find(|u| u.0 == user)
            .map(|u| u.2)
            .unwrap_or_default()
    };

    // The throwaway VPN CA: personal certificates, one of them revoked (a lost laptop).
    let pki = Pki::new()?;
    let martin = pki.personal("dr.martin", 1001)?;
    let bernard = pki.personal("dr.bernard", 1002)?;
    let martin_lost = pki.personal("dr.martin", 1000)?;
    let policy = RemoteAccessPolicy::builder()
        .lan("10.1.0.0/16".parse()?)
        .vpn_pool("10.8.0.0/24".parse()?)
        .ca_der(pki.ca.der().clone())
        .crl_der(pki.crl(&[1000])?)
        .build()?;

    let sink = Arc::new(MemorySink::new());
    let gate = AccessGate::new(accounts, policy, sink.clone(), clock.clone());

    let (lan_ip, vpn_ip): (IpAddr, IpAddr) = ("10.1.4.20".parse()?, "10.8.0.12".parse()?);
    let lan = |ws: &str| ConnectionContext::new(lan_ip).with_workstation(ws);
    let vpn = |cert: &CertificateDer| {
        ConnectionContext::new(vpn_ip).with_client_chain(vec![cert.clone()])
    };
    let creds = |user: &str, password: &str| Credentials::new(user, password, "JFIV");

    let mut failures = 0;
    let mut play =
        |name: String, expect: Expect, result: &Result<jfiv::auth::Session, AuthError>| {
            let ok = matches(&expect, result);
            println!(
                "[{}] {name}\n      -> {}{}",
                if ok { " ok " } else { "FAIL" },
                outcome_text(result),
                if ok {
                    String::new()
                } else {
                    format!(" (expected {expect:?})")
                }
            );
            if !ok {
                failures += 1;
            }
        };

    println!("== Access scenarios (simulated clock starts {start})\n");
    let r = gate
        .login(
            &creds("secr.durand", password_of("secr.durand")),
            &lan("amp-accueil-1"),
        )
        .await;
    play(
        "secretary on the hospital LAN".into(),
        Expect::Session(Profile::Secretary),
        &r,
    );
    let secretary = r.ok();

    let r = gate
        .login(&creds("dr.martin", password_of("dr.martin")), &vpn(&martin))
        .await;
    play(
        "gynecologist through the VPN with her personal certificate".into(),
        Expect::Session(Profile::Clinician),
        &r,
    );
    let gynecologist = r.ok();

    let r = gate
        .login(
            &creds("dr.martin", password_of("dr.martin")),
            &vpn(&bernard),
        )
        .await;
    play(
        "the same, presenting a colleague's certificate".into(),
        Expect::Refused("certificate-identity-mismatch"),
        &r,
    );

    let r = gate
        .login(
            &creds("dr.martin", password_of("dr.martin")),
            &vpn(&martin_lost),
        )
        .await;
    play(
        "the same, with her revoked certificate (lost laptop)".into(),
        Expect::Refused("certificate-revoked"),
        &r,
    );

    let outside =
        ConnectionContext::new("192.0.2.44".parse()?).with_client_chain(vec![martin.clone()]);
    let r = gate
        .login(&creds("dr.martin", password_of("dr.martin")), &outside)
        .await;
    play(
        "the same, from an address outside the VPN pool".into(),
        Expect::Refused("outside-allowed-networks"),
        &r,
    );

    println!("\n== Password guessing on bio.petit from a LAN workstation\n");
    let policy = gate.lockout().policy().clone();
    for n in 1..=5u32 {
        let r = gate
            .login(
                &creds("bio.petit", &format!("spermo{n}")),
                &lan("amp-labo-2"),
            )
            .await;
        play(format!("guess {n}"), Expect::Invalid("wrong password"), &r);
        clock.advance(Duration::seconds(2));
    }
    let r = gate
        .login(&creds("bio.petit", "spermo6"), &lan("amp-labo-2"))
        .await;
    play(
        "guess 6, right away: throttled, password not even checked".into(),
        Expect::Invalid("throttled"),
        &r,
    );
    for n in 6..=10u32 {
        let state = gate
            .lockout()
            .state("bio.petit")
            .ok_or("no failure state")?;
        let wait = policy.delay_after(state.consecutive);
        clock.set(state.last_failure.ok_or("no last failure")? + wait + Duration::seconds(1));
        let r = gate
            .login(
                &creds("bio.petit", &format!("spermo{n}")),
                &lan("amp-labo-2"),
            )
            .await;
        play(
            format!("guess {n}, after waiting {} min", wait.num_minutes()),
            Expect::Invalid("wrong password"),
            &r,
        );
    }
    let r = gate
        .login(
            &creds("bio.petit", password_of("bio.petit")),
            &lan("amp-labo-2"),
        )
        .await;
    play(
        "the real biologist, right password, account locked: same message".into(),
        Expect::Invalid("account locked"),
        &r,
    );

    println!("\n== Administration and session ends\n");
    let r = gate
        .login(&creds("admin.it", password_of("admin.it")), &lan("dsi-1"))
        .await;
    play(
        "IT administrator on the LAN".into(),
        Expect::Session(Profile::ItAdministrator),
        &r,
    );
    if let Ok(admin) = &r {
        let unlocked = gate.unlock(&admin.token, "bio.petit").await?;
        println!("      admin.it unlocks bio.petit (was locked: {unlocked})");
        let r = gate
            .login(
                &creds("bio.petit", password_of("bio.petit")),
                &lan("amp-labo-2"),
            )
            .await;
        play(
            "the biologist logs in after the unlock".into(),
            Expect::Session(Profile::Biologist),
            &r,
        );
        gate.logout(&admin.token).await?;
    }
    if let Some(s) = secretary {
        gate.logout(&s.token).await?;
        println!("      secr.durand logs out");
    }
    if gynecologist.is_some() {
        clock.advance(Duration::minutes(31));
        let expired = gate.expire_sessions().await?;
        println!("      31 minutes later: {expired} idle session(s) expired");
    }

    println!("\n== Audit trail\n");
    for rec in sink.query(&Query::all()).await? {
        if args.json {
            println!("{}", serde_json::to_string(&rec)?);
            continue;
        }
        let e = &rec.event;
        let origin = match &e.origin {
            Origin::Local { workstation } => format!("LAN {workstation}"),
            Origin::Remote {
                client_ip,
                certificate_fingerprint,
            } => format!(
                "VPN {client_ip} cert {}",
                certificate_fingerprint
                    .as_deref()
                    .map(|f| &f[..16])
                    .unwrap_or("none")
            ),
            other => format!("{other:?}"),
        };
        println!(
            "{:>3} {} {:<16} {:<8} {:<28} {:<34} {}",
            rec.seq,
            e.time.format("%H:%M:%S"),
            e.action.name(),
            format!("{:?}", e.outcome).to_lowercase(),
            format!(
                "{}{}",
                e.actor.user_id,
                e.actor
                    .profile
                    .as_deref()
                    .map(|p| format!(" ({p})"))
                    .unwrap_or_default()
            ),
            origin,
            e.details
        );
    }

    if failures > 0 {
        eprintln!("\n{failures} scenario(s) did not end as the procedure expects");
        return Ok(ExitCode::FAILURE);
    }
    println!("\nEvery scenario ended as the procedure expects.");
    Ok(ExitCode::SUCCESS)
}
