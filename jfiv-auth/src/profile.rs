//! JFIV profiles, their permissions, and the mapping from Oracle roles to profiles.
//!
//! The matrix is fixed in code ([`Profile::permissions`]) and documented in the crate docs; a
//! test checks that the table in the docs and the code agree cell by cell.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

macro_rules! named_enum {
    (
        $(#[$meta:meta])* $vis:vis enum $name:ident, $unknown:literal {
            $( $(#[$doc:meta])* $variant:ident => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        $vis enum $name {
            $( $(#[$doc])* #[serde(rename = $text)] $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The kebab-case name, as written in audit events, configuration and the docs.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl FromStr for $name {
            type Err = Error;

            fn from_str(s: &str) -> Result<Self> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.name() == s)
                    .ok_or_else(|| Error::Config {
                        what: $unknown.into(),
                        detail: format!(
                            "unknown {} {s:?} (expected one of: {})",
                            $unknown,
                            $name::ALL.iter().map(|v| v.name()).collect::<Vec<_>>().join(", ")
                        ),
                    })
            }
        }
    };
}

named_enum! {
    /// What a user is in the AMP unit; decides what JFIV lets them do.
    pub enum Profile, "profile" {
        /// Medical secretary: the administrative file (identity, appointments, billing).
        Secretary => "secretary",
        /// Gynecologist or other physician of the AMP centre (in the hospital or in a partner office).
        Clinician => "clinician",
        /// Biologist or staff of the AMP laboratory (the partner laboratory included).
        Biologist => "biologist",
        /// Midwife or nurse of the unit.
        Midwife => "midwife",
        /// IT administrator: accounts, restores; no access to medical content.
        ItAdministrator => "it-administrator",
        /// Backup operator: runs backups and handles tapes; no access to medical content.
        BackupOperator => "backup-operator",
        /// Auditor (DPO, quality, CNIL or HDS audit): reads the audit trail only.
        Auditor => "auditor",
    }
}

named_enum! {
    /// Something JFIV, or a tool built on it, lets a profile do.
    pub enum Permission, "permission" {
        /// Read the administrative file (identity, appointments, insurance).
        ReadAdministrative => "read-administrative",
        /// Create or modify the administrative file.
        WriteAdministrative => "write-administrative",
        /// Read the medical file (cycles, biology, treatments).
        ReadMedical => "read-medical",
        /// Create or modify the medical file.
        WriteMedical => "write-medical",
        /// Export the Agence de la Biomédecine dossier.
        ExportAbm => "export-abm",
        /// Run a backup.
        RunBackup => "run-backup",
        /// Run a restore (overwrites data: IT administrator only).
        RunRestore => "run-restore",
        /// Read the audit trail.
        ReadAuditTrail => "read-audit-trail",
        /// Create accounts, unlock them, reset passwords.
        ManageAccounts => "manage-accounts",
    }
}

impl Profile {
    /// The permissions of this profile: the JFIV profile x permission matrix.
    pub fn permissions(self) -> &'static [Permission] {
        use Permission::*;
        match self {
            Profile::Secretary => &[ReadAdministrative, WriteAdministrative],
            Profile::Clinician => &[
                ReadAdministrative,
                WriteAdministrative,
                ReadMedical,
                WriteMedical,
                ExportAbm,
            ],
            Profile::Biologist => &[ReadAdministrative, ReadMedical, WriteMedical, ExportAbm],
            Profile::Midwife => &[ReadAdministrative, ReadMedical, WriteMedical],
            Profile::ItAdministrator => &[RunRestore, ManageAccounts],
            Profile::BackupOperator => &[RunBackup],
            Profile::Auditor => &[ReadAuditTrail],
        }
    }

    /// Whether this profile has `permission`.
    pub fn allows(self, permission: Permission) -> bool {
        self.permissions().contains(&permission)
    }

    /// `Ok` if this profile has `permission`.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] otherwise.
    pub fn require(self, permission: Permission) -> Result<()> {
        if self.allows(permission) {
            Ok(())
        } else {
            Err(Error::PermissionDenied {
                profile: self,
                permission,
            })
        }
    }

    /// The profile x permission matrix as a Markdown table (the one in the crate docs).
    pub fn matrix_markdown() -> String {
        let mut out = String::from("| profile |");
        for p in Permission::ALL {
            out.push_str(&format!(" {p} |"));
        }
        out.push_str("\n|---|");
        for _ in Permission::ALL {
            out.push_str("---|");
        }
        out.push('\n');
        for profile in Profile::ALL {
            out.push_str(&format!("| {profile} |"));
            for &p in Permission::ALL {
                out.push_str(if profile.allows(p) { " x |" } else { "   |" });
            }
            out.push('\n');
        }
        out
    }
}

/// Which Oracle roles give which JFIV profile, read from TOML:
///
/// ```toml
/// [roles]
/// JFIV_SECRETAIRE = "secretary"
/// JFIV_CLINICIEN = "clinician"
/// ```
///
/// Role names are compared case-insensitively (Oracle stores them in upper case). A user whose
/// session roles map to no profile gets [`Error::NoJfivRole`]; to two different profiles,
/// [`Error::AmbiguousProfile`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoleMapping {
    roles: BTreeMap<String, Profile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleMappingFile {
    roles: BTreeMap<String, Profile>,
}

impl RoleMapping {
    /// An empty mapping (every user gets [`Error::NoJfivRole`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `role` -> `profile`.
    pub fn with_role(mut self, role: &str, profile: Profile) -> Self {
        self.roles.insert(role.to_uppercase(), profile);
        self
    }

    /// Parses the TOML form.
    ///
    /// # Errors
    /// [`Error::Config`] for bad TOML, an unknown profile name, an unknown key, or two spellings
    /// of one role.
    pub fn from_toml(text: &str) -> Result<Self> {
        let file: RoleMappingFile = toml::from_str(text).map_err(|e| Error::Config {
            what: "role mapping".into(),
            detail: e.to_string(),
        })?;
        let mut roles = BTreeMap::new();
        for (role, profile) in file.roles {
            if roles.insert(role.to_uppercase(), profile).is_some() {
                return Err(Error::Config {
                    what: "role mapping".into(),
                    detail: format!("role {role:?} is listed twice (role names ignore case)"),
                });
            }
        }
        Ok(Self { roles })
    }

    /// The profile that `user`'s session roles give.
    ///
    /// # Errors
    /// [`Error::NoJfivRole`] when no role maps to a profile, [`Error::AmbiguousProfile`] when the
    /// roles map to more than one profile.
    pub fn profile_for(&self, user: &str, session_roles: &[String]) -> Result<Profile> {
        let mut found: Vec<Profile> = session_roles
            .iter()
            .filter_map(|r| self.roles.get(&r.to_uppercase()).copied())
            .collect();
        found.sort();
        found.dedup();
        match found.as_slice() {
            [one] => Ok(*one),
            [] => Err(Error::NoJfivRole {
                user: user.to_owned(),
                roles: session_roles.to_vec(),
                expected: self.roles.keys().cloned().collect(),
            }),
            _ => Err(Error::AmbiguousProfile {
                user: user.to_owned(),
                profiles: found,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    /// The table as written in the crate docs (lib.rs), parsed.
    fn doc_table() -> Vec<(String, Vec<String>)> {
        let lib = include_str!("lib.rs");
        let lines: Vec<&str> = lib
            .lines()
            .map(|l| l.trim_start_matches("//!").trim())
            .filter(|l| l.starts_with('|'))
            .collect();
        let header: Vec<String> = lines[0]
            .split('|')
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(header[0], "profile");
        lines[2..]
            .iter()
            .map(|row| {
                let cells: Vec<&str> = row.split('|').map(str::trim).collect();
                // cells[0] is empty (before the first '|'), cells[1] the profile.
                let profile = cells[1].trim_matches('`').to_owned();
                let granted = header[1..]
                    .iter()
                    .zip(&cells[2..])
                    .filter(|(_, c)| **c == "x")
                    .map(|(h, _)| h.trim_matches('`').to_owned())
                    .collect();
                (profile, granted)
            })
            .collect()
    }

    #[test]
    fn doc_table_matches_the_code_cell_by_cell() {
        let table = doc_table();
        assert_eq!(table.len(), Profile::ALL.len(), "one row per profile");
        for (row, &profile) in table.iter().zip(Profile::ALL) {
            assert_eq!(row.0, profile.name());
            for &permission in Permission::ALL {
                assert_eq!(
                    row.1.iter().any(|p| p == permission.name()),
                    profile.allows(permission),
                    "{profile} x {permission}: docs and code disagree"
                );
            }
            for p in &row.1 {
                p.parse::<Permission>().unwrap();
            }
        }
    }

    #[test]
    fn matrix_is_exactly_the_expected_one() {
        use Permission::*;
        // Written out independently of `permissions()`: every one of the 7 x 9 cells.
        let expected: &[(Profile, &[Permission])] = &[
            (
                Profile::Secretary,
                &[ReadAdministrative, WriteAdministrative],
            ),
            (
                Profile::Clinician,
                &[
                    ReadAdministrative,
                    WriteAdministrative,
                    ReadMedical,
                    WriteMedical,
                    ExportAbm,
                ],
            ),
            (
                Profile::Biologist,
                &[ReadAdministrative, ReadMedical, WriteMedical, ExportAbm],
            ),
            (
                Profile::Midwife,
                &[ReadAdministrative, ReadMedical, WriteMedical],
            ),
            (Profile::ItAdministrator, &[RunRestore, ManageAccounts]),
            (Profile::BackupOperator, &[RunBackup]),
            (Profile::Auditor, &[ReadAuditTrail]),
        ];
        assert_eq!(expected.len(), Profile::ALL.len());
        let mut cells = 0;
        for &(profile, granted) in expected {
            for &permission in Permission::ALL {
                cells += 1;
                let want = granted.contains(&permission);
                assert_eq!(profile.allows(permission), want, "{profile} x {permission}");
                assert_eq!(profile.require(permission).is_ok(), want);
                if !want {
                    let err = profile.require(permission).unwrap_err();
                    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
                }
            }
        }
        assert_eq!(cells, 7 * 9);
    }

    #[test]
    fn separation_of_duties_holds() {
        for &profile in Profile::ALL {
            // Whoever touches medical content cannot read the audit trail or restore, and
            // technical profiles never see medical content.
            let medical = profile.allows(Permission::ReadMedical);
            let technical = profile.allows(Permission::RunBackup)
                || profile.allows(Permission::RunRestore)
                || profile.allows(Permission::ManageAccounts)
                || profile.allows(Permission::ReadAuditTrail);
            assert!(
                !(medical && technical),
                "{profile} mixes medical and technical duties"
            );
            if profile.allows(Permission::WriteMedical) {
                assert!(medical, "{profile} writes what it cannot read");
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for &p in Profile::ALL {
            assert_eq!(p.name().parse::<Profile>().unwrap(), p);
            assert_eq!(serde_json::to_string(&p).unwrap(), format!("\"{p}\""));
        }
        for &p in Permission::ALL {
            assert_eq!(p.name().parse::<Permission>().unwrap(), p);
        }
        let err = "nurse".parse::<Profile>().unwrap_err();
        assert!(err.to_string().contains("secretary"), "{err}");
    }

    #[test]
    fn role_mapping_from_toml() {
        let mapping = RoleMapping::from_toml(
            "[roles]\nJFIV_SECRETAIRE = \"secretary\"\njfiv_clinicien = \"clinician\"\n",
        )
        .unwrap();
        let roles = |r: &[&str]| r.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            mapping
                .profile_for("dupont", &roles(&["CONNECT", "JFIV_CLINICIEN"]))
                .unwrap(),
            Profile::Clinician
        );
        assert_eq!(
            mapping
                .profile_for("dupont", &roles(&["jfiv_secretaire"]))
                .unwrap(),
            Profile::Secretary
        );
        let err = mapping
            .profile_for("durand", &roles(&["CONNECT", "RESOURCE"]))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NoJfivRole);
        let msg = err.to_string();
        assert!(
            msg.contains("durand") && msg.contains("JFIV_SECRETAIRE"),
            "{msg}"
        );
        let err = mapping
            .profile_for("x", &roles(&["JFIV_SECRETAIRE", "JFIV_CLINICIEN"]))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AmbiguousProfile);
    }

    #[test]
    fn role_mapping_rejects_bad_toml() {
        for bad in [
            "[roles]\nA = \"nurse\"\n",
            "[roles]\nA = \"secretary\"\na = \"clinician\"\n",
            "[rolez]\nA = \"secretary\"\n",
            "not toml",
        ] {
            let err = RoleMapping::from_toml(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Config, "{bad}");
        }
    }
}
