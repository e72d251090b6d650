//! Where each tape is (the drive, the server room, the offsite room), the chain of custody of
//! every move, and the check that the tapes are where the procedure wants them.
//!
//! The procedure: the database tapes are "stored in a room away from the server room". A tape
//! written last night that is still next to the server in the morning is one fire away from
//! being lost with the server; [`check_locations`] reports it. Every move goes through
//! [`LocationRegister::record_move`], which writes a [`jfiv_audit::Action::TapeMoved`] event and
//! applies the move only once the audit trail has it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use chrono::{DateTime, NaiveTime, Utc};
use jfiv_audit::{Action, Actor, AuditEvent, AuditSink, Clock, Origin, Outcome};
use serde::{Deserialize, Serialize};

use super::catalog::{Catalog, load_json_state, save_json_state};
use super::{Error, Result};

/// A place a tape can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Place {
    /// In the tape drive (or the autoloader), in the server room.
    Drive,
    /// On a shelf of the server room.
    ServerRoom,
    /// In the offsite room, away from the server room.
    Offsite,
}

/// The names of the places, as the hospital calls them, and the deadline of the morning move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocationConfig {
    /// Name of the drive (e.g. `LTO drive, rack B2`).
    pub drive: String,
    /// Name of the server room (e.g. `Salle informatique, niveau -1`).
    pub server_room: String,
    /// Name of the offsite room (e.g. `Local archives, bâtiment C`).
    pub offsite_room: String,
    /// Time of day (UTC) after which a tape written the night before must have left the server
    /// room.
    pub leave_server_room_by: NaiveTime,
}

impl Default for LocationConfig {
    fn default() -> Self {
        Self {
            drive: "drive".into(),
            server_room: "server-room".into(),
            offsite_room: "offsite-room".into(),
            leave_server_room_by: NaiveTime::from_hms_opt(10, 0, 0).unwrap_or_default(),
        }
    }
}

impl LocationConfig {
    /// The configured name of `place`.
    pub fn name(&self, place: Place) -> &str {
        match place {
            Place::Drive => &self.drive,
            Place::ServerRoom => &self.server_room,
            Place::Offsite => &self.offsite_room,
        }
    }

    /// The place called `name` (its configured name, or `drive` / `server-room` / `offsite`).
    ///
    /// # Errors
    /// [`Error::Config`] for an unknown name.
    pub fn parse(&self, name: &str) -> Result<Place> {
        [Place::Drive, Place::ServerRoom, Place::Offsite]
            .into_iter()
            .find(|p| {
                self.name(*p).eq_ignore_ascii_case(name) || p.to_string().eq_ignore_ascii_case(name)
            })
            .ok_or_else(|| Error::Config {
                reason: format!(
                    "unknown location {name:?}: {}, {} or {}",
                    self.drive, self.server_room, self.offsite_room
                ),
            })
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Place::Drive => "drive",
            Place::ServerRoom => "server-room",
            Place::Offsite => "offsite",
        })
    }
}

/// What recording a move needs: the place names, the clock, the audit trail and this host.
#[derive(Debug, Clone, Copy)]
pub struct Custody<'a> {
    /// The place names.
    pub config: &'a LocationConfig,
    /// The clock.
    pub clock: &'a dyn Clock,
    /// The audit trail.
    pub sink: &'a dyn AuditSink,
    /// The host recording the move.
    pub host: &'a str,
}

/// One recorded move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    /// The tape.
    pub tape: String,
    /// Where it was (None for its first recorded place).
    pub from: Option<Place>,
    /// Where it went.
    pub to: Place,
    /// Who moved it (personal user id).
    pub by: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// The register of where every tape is, with the history of moves (chain of custody).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocationRegister {
    /// Where each tape is now.
    pub current: BTreeMap<String, Place>,
    /// Every move, oldest first.
    pub history: Vec<Move>,
}

impl LocationRegister {
    /// Loads the register at `path` (a missing file is an empty register).
    ///
    /// # Errors
    /// [`Error::State`].
    pub fn load(path: &Path) -> Result<Self> {
        load_json_state(path)
    }

    /// Saves it atomically.
    ///
    /// # Errors
    /// [`Error::State`].
    pub fn save(&self, path: &Path) -> Result<()> {
        save_json_state(path, self)
    }

    /// Where `tape` is.
    pub fn place_of(&self, tape: &str) -> Option<Place> {
        self.current.get(tape).copied()
    }

    /// Moves `tape` to `to`, done by `by`: the move is written to the audit trail as a
    /// [`TapeMoved`](Action::TapeMoved) event (object: the barcode; details: from and to, by
    /// their configured names) and applied only when the trail has it.
    ///
    /// # Errors
    /// [`Error::Config`] for an empty user id; [`Error::Audit`] when the trail refuses the
    /// event (the register is then unchanged).
    pub async fn record_move(
        &mut self,
        tape: &str,
        to: Place,
        by: &str,
        custody: &Custody<'_>,
    ) -> Result<Move> {
        let Custody {
            config,
            clock,
            sink,
            host,
        } = *custody;
        if by.trim().is_empty() {
            return Err(Error::Config {
                reason: "a tape move needs the user id of who moved it".into(),
            });
        }
        let from = self.place_of(tape);
        let at = clock.now();
        let details = format!(
            "from {} to {}",
            from.map_or("(first recorded)", |p| config.name(p)),
            config.name(to)
        );
        let event = AuditEvent::new(
            at,
            Actor::new(by, "backup-operator"),
            Origin::System {
                host: host.to_owned(),
            },
            Action::TapeMoved,
        )
        .with_object(tape)
        .with_outcome(Outcome::Success)
        .with_details(details);
        sink.append(event).await.map_err(Error::Audit)?;
        let mv = Move {
            tape: tape.to_owned(),
            from,
            to,
            by: by.to_owned(),
            at,
        };
        self.current.insert(tape.to_owned(), to);
        self.history.push(mv.clone());
        Ok(mv)
    }
}

/// Something the location check found wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum LocationAlert {
    /// A tape written last night is still next to the server after the configured hour.
    StillNearServer {
        /// The tape.
        tape: String,
        /// Where it is.
        place: Place,
        /// When its session started.
        written: DateTime<Utc>,
    },
    /// The tape needed tonight is in the offsite room.
    NeededTonightIsOffsite {
        /// The tape.
        tape: String,
    },
    /// A catalogued tape has no recorded location.
    Unaccounted {
        /// The tape.
        tape: String,
    },
}

/// Checks the tapes' places at `now` (a pure function): a tape whose latest session started
/// within the last night and that is still in the drive or the server room after
/// `leave_server_room_by`, the tape planned for tonight being offsite, and catalogued tapes
/// whose location was never recorded.
pub fn check_locations(
    register: &LocationRegister,
    catalog: &Catalog,
    tonight: Option<&str>,
    config: &LocationConfig,
    now: DateTime<Utc>,
) -> Vec<LocationAlert> {
    let mut alerts = Vec::new();
    let deadline = now
        .date_naive()
        .and_time(config.leave_server_room_by)
        .and_utc();
    let night_start = deadline - chrono::Duration::hours(24);
    for info in catalog.inventory() {
        let tape = &info.label.barcode;
        match register.place_of(tape) {
            None => alerts.push(LocationAlert::Unaccounted { tape: tape.clone() }),
            Some(place @ (Place::Drive | Place::ServerRoom)) => {
                if let Some(written) = info.last_written {
                    let late = now >= deadline && written >= night_start && written < deadline;
                    if late && Some(tape.as_str()) != tonight {
                        alerts.push(LocationAlert::StillNearServer {
                            tape: tape.clone(),
                            place,
                            written,
                        });
                    }
                }
            }
            Some(Place::Offsite) => {}
        }
    }
    if let Some(t) = tonight
        && register.place_of(t) == Some(Place::Offsite)
    {
        alerts.push(LocationAlert::NeededTonightIsOffsite { tape: t.to_owned() });
    }
    alerts
}
