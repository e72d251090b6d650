//! What one audit record says: who, when, from where, did what, to which record, with what outcome.
//!
//! The fields follow what CNIL deliberation 2021-122 asks an access trace to hold: the
//! individually identified author, the date and time, the nature of the operation and the record
//! concerned. The JSON form (`serde`) is the on-disk form of the file log and what a SIEM reads.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One thing that happened, as it will be kept in the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// When it happened, in UTC.
    pub time: DateTime<Utc>,
    /// Who did it: always one identified person or one named component, never "someone".
    pub actor: Actor,
    /// Where they did it from.
    pub origin: Origin,
    /// What was done.
    pub action: Action,
    /// The medical record concerned (patient, and cycle when there is one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<RecordRef>,
    /// The object concerned when it is not a medical record: a tape barcode, a snapshot id, a
    /// restore plan id, a key fingerprint, an audit period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// Whether it succeeded.
    pub outcome: Outcome,
    /// Free text: the precise reason of a refusal, the tape's new location, a byte count...
    /// Never a password, a key or the content of a medical record.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl AuditEvent {
    /// A successful `action` by `actor` from `origin` at `time`, with no record, object or details.
    pub fn new(time: DateTime<Utc>, actor: Actor, origin: Origin, action: Action) -> Self {
        Self {
            time,
            actor,
            origin,
            action,
            record: None,
            object: None,
            outcome: Outcome::Success,
            details: String::new(),
        }
    }

    /// Sets the medical record concerned.
    pub fn with_record(mut self, record: RecordRef) -> Self {
        self.record = Some(record);
        self
    }

    /// Sets the non-medical object concerned (tape barcode, snapshot id, ...).
    pub fn with_object(mut self, object: impl Into<String>) -> Self {
        self.object = Some(object.into());
        self
    }

    /// Sets the outcome.
    pub fn with_outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }

    /// Sets the free details.
    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }
}

/// The individually identified author of an event.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    /// The personal user id (the login name), or the name of a system component
    /// (`nightly-backup`) for unattended jobs.
    pub user_id: String,
    /// The user's JFIV profile at the time (`secretary`, `clinician`, `backup-operator`...),
    /// when known. Unknown for a failed login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

impl Actor {
    /// An actor with a known profile.
    pub fn new(user_id: impl Into<String>, profile: impl Into<String>) -> Self {
        Self {
            user_id: user_id.into(),
            profile: Some(profile.into()),
        }
    }

    /// An actor whose profile is not known (a failed login, an unknown user name).
    pub fn unprofiled(user_id: impl Into<String>) -> Self {
        Self {
            user_id: user_id.into(),
            profile: None,
        }
    }
}

/// Where an action came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Origin {
    /// A workstation on the hospital network.
    Local {
        /// Host name or IP address of the workstation.
        workstation: String,
    },
    /// A remote user, through the VPN.
    Remote {
        /// The client's address as seen by JFIV (inside the VPN pool).
        client_ip: IpAddr,
        /// SHA-256 fingerprint (hex) of the client certificate presented, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        certificate_fingerprint: Option<String>,
    },
    /// A scheduled or unattended job on a server (the nightly backup, a restore drill).
    System {
        /// The host the job runs on.
        host: String,
    },
}

/// The patient record, and the treatment cycle when there is one, an event concerns.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RecordRef {
    /// The patient's identifier in JFIV (never a name).
    pub patient_id: String,
    /// The cycle (IIU, FIV, ICSI, TEC) concerned, if the action is about one cycle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cycle_id: Option<String>,
}

impl RecordRef {
    /// The record of one patient.
    pub fn patient(patient_id: impl Into<String>) -> Self {
        Self {
            patient_id: patient_id.into(),
            cycle_id: None,
        }
    }

    /// One cycle of one patient.
    pub fn cycle(patient_id: impl Into<String>, cycle_id: impl Into<String>) -> Self {
        Self {
            patient_id: patient_id.into(),
            cycle_id: Some(cycle_id.into()),
        }
    }
}

/// How an action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// It was done.
    Success,
    /// It was attempted and failed (an I/O error, a verification failure).
    Failure,
    /// It was refused by a policy (wrong password, locked account, certificate refused).
    Refused,
}

macro_rules! actions {
    ($( $(#[$doc:meta])* $variant:ident => $name:literal, )+) => {
        /// What was done. Serialised, and parsed, as its kebab-case name (`record-read`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[non_exhaustive]
        pub enum Action {
            $( $(#[$doc])* #[serde(rename = $name)] $variant, )+
        }

        impl Action {
            /// Every action, in declaration order.
            pub const ALL: &'static [Action] = &[$(Action::$variant),+];

            /// The kebab-case name, as written in the log and accepted by [`FromStr`].
            pub fn name(self) -> &'static str {
                match self {
                    $(Action::$variant => $name,)+
                }
            }
        }
    };
}

actions! {
    /// A user logged in.
    LoginSuccess => "login-success",
    /// A login was refused (wrong password, unknown user; the precise reason is in `details`).
    LoginFailure => "login-failure",
    /// An account was locked after too many failures.
    LoginLockout => "login-lockout",
    /// A user logged out.
    Logout => "logout",
    /// A session expired (idle timeout or absolute lifetime).
    SessionExpired => "session-expired",
    /// A connection was refused before any password was checked (origin, certificate).
    AccessRefused => "access-refused",
    /// An administrator unlocked an account.
    AccountUnlocked => "account-unlocked",
    /// An account was created.
    AccountCreated => "account-created",
    /// A password was changed.
    PasswordChanged => "password-changed",
    /// A medical or administrative record was read.
    RecordRead => "record-read",
    /// A record was created or modified.
    RecordWrite => "record-write",
    /// A record left JFIV (export to the Agence de la Biomédecine, print, file).
    RecordExport => "record-export",
    /// A backup started.
    BackupStarted => "backup-started",
    /// A backup finished and is complete.
    BackupFinished => "backup-finished",
    /// A backup failed or is incomplete.
    BackupFailed => "backup-failed",
    /// A backup was read back and checked.
    BackupVerified => "backup-verified",
    /// Expired backups were removed by the retention policy.
    BackupPruned => "backup-pruned",
    /// A tape was labelled (its label written at the start of the tape).
    TapeLabelled => "tape-labelled",
    /// A tape was loaded into a drive.
    TapeLoaded => "tape-loaded",
    /// A tape changed location (drive, server room, offsite room).
    TapeMoved => "tape-moved",
    /// A restore was planned.
    RestorePlanned => "restore-planned",
    /// One step of a restore plan was done.
    RestoreStepDone => "restore-step-done",
    /// A restore finished.
    RestoreFinished => "restore-finished",
    /// A restore failed.
    RestoreFailed => "restore-failed",
    /// A restore drill was run and its evidence report written.
    RestoreDrill => "restore-drill",
    /// A key (backup repository key, paper key, audit key) was used or created.
    KeyUsed => "key-used",
    /// An audit period was sealed with a signed checkpoint.
    AuditSealed => "audit-sealed",
    /// Expired audit periods were deleted by the retention policy.
    AuditPruned => "audit-pruned",
    /// A torn last line of the audit log (power loss during a write) was cut off.
    AuditRecovered => "audit-recovered",
    /// A signed checkpoint of the audit log was exported.
    AuditCheckpoint => "audit-checkpoint",
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name given to [`Action::from_str`] is not an action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown audit action {name:?} (expected a kebab-case name such as record-read)")]
pub struct UnknownAction {
    /// What was given.
    pub name: String,
}

impl FromStr for Action {
    type Err = UnknownAction;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .iter()
            .copied()
            .find(|a| a.name() == s)
            .ok_or_else(|| UnknownAction { name: s.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names_round_trip_through_serde_and_from_str() {
        for &action in Action::ALL {
            let json = serde_json::to_string(&action).unwrap();
            assert_eq!(json, format!("\"{}\"", action.name()));
            assert_eq!(serde_json::from_str::<Action>(&json).unwrap(), action);
            assert_eq!(action.name().parse::<Action>().unwrap(), action);
        }
        assert!("record-reed".parse::<Action>().is_err());
    }

    #[test]
    fn event_serialises_as_one_flat_greppable_object() {
        let event = AuditEvent::new(
            DateTime::parse_from_rfc3339("2026-03-02T08:15:00Z")
                .unwrap()
                .with_timezone(&Utc),
            Actor::new("dr.martin", "clinician"),
            Origin::Remote {
                client_ip: "10.8.0.12".parse().unwrap(),
                certificate_fingerprint: Some("ab12".into()),
            },
            Action::RecordRead,
        )
        .with_record(RecordRef::cycle("P000123", "FIV-2026-004"));
        let json = serde_json::to_string(&event).unwrap();
        assert!(!json.contains('\n'));
        assert!(json.contains(r#""action":"record-read""#), "{json}");
        assert!(json.contains(r#""patient_id":"P000123""#), "{json}");
        let back: AuditEvent = serde_json::from_str(&json).unwrap();
        assert_eq!(back, event);
    }
}
