//! The adapters to the tape subsystem of `jfiv-backup` ([`jfiv_backup::tape`]): the
//! [`Inventory`] from a tape [`Catalog`] (kept on disk, or rebuilt by [`scan_tape`]) and the
//! [`LocationRegister`], and [`LibraryTapes`], a [`TapeAccess`] over a [`VirtualLibrary`].
//!
//! [`scan_tape`]: jfiv_backup::tape::scan_tape

use jfiv_backup::ChunkId;
use jfiv_backup::tape::format::{SessionItem, VolumeStatus, read_session};
use jfiv_backup::tape::{
    Catalog, ChangerPurpose, LibraryChanger, LocationConfig, LocationRegister, Place,
    VirtualLibrary,
};

use crate::inventory::{
    CatalogOrigin, Inventory, Location, MeasureKind, Measurement, TapeSession, TapeVolume,
    Verification,
};
use crate::tape::{TapeAccess, TapeItem};
use crate::{Error, Result};

/// Where the register says `barcode` is, by the configured names.
pub fn location_of(
    barcode: &str,
    register: &LocationRegister,
    config: &LocationConfig,
) -> Location {
    match register.place_of(barcode) {
        Some(Place::Drive) => Location::Drive {
            name: config.name(Place::Drive).to_owned(),
        },
        Some(Place::ServerRoom) => Location::ServerRoom {
            name: config.name(Place::ServerRoom).to_owned(),
        },
        Some(Place::Offsite) => Location::Offsite {
            name: config.name(Place::Offsite).to_owned(),
        },
        _ => Location::Unknown,
    }
}

impl Inventory {
    /// Adds the sessions of a tape catalog, with the tapes' locations from `register`, and the
    /// read-back verifications as tape-read measurements. `origin` says whether the catalog is
    /// the one kept on disk or one rebuilt by scanning the tapes.
    ///
    /// A session whose snapshot id cannot be parsed (a session interrupted before its
    /// manifest) is named in [`Inventory::notes`] and left out.
    pub fn add_tape_catalog(
        &mut self,
        catalog: &Catalog,
        register: &LocationRegister,
        config: &LocationConfig,
        origin: CatalogOrigin,
    ) {
        self.tape_catalog = origin;
        for entry in catalog.sessions.values() {
            let c = &entry.catalog;
            let Ok(snapshot) = c.snapshot.parse() else {
                self.notes.push(format!(
                    "tape session {} ({} from {}) has no readable snapshot id; not usable",
                    c.session, c.source, c.started
                ));
                continue;
            };
            let verification = match entry.verifications.last() {
                None => Verification::NotVerified,
                Some(v) if v.ok => Verification::Ok { at: v.at },
                Some(v) => Verification::Damaged {
                    at: v.at,
                    reason: v
                        .error
                        .clone()
                        .unwrap_or_else(|| "verification failed".into()),
                    affected_files: Vec::new(),
                },
            };
            for v in &entry.verifications {
                self.measurements.push(Measurement {
                    kind: MeasureKind::TapeRead,
                    bytes: v.bytes,
                    seconds: v.seconds,
                    at: v.at,
                });
            }
            let incomplete_volume = c
                .volumes
                .iter()
                .any(|v| v.status == VolumeStatus::Incomplete);
            self.tape_sessions.push(TapeSession {
                session: c.session.to_string(),
                snapshot,
                source: c.source.clone(),
                host: c.host.clone(),
                started: c.started,
                finished: entry.finished,
                volumes: c
                    .volumes
                    .iter()
                    .map(|v| TapeVolume {
                        volume: v.volume,
                        barcode: v.tape.clone(),
                        file: v.file,
                        location: location_of(&v.tape, register, config),
                    })
                    .collect(),
                complete: entry.complete && !incomplete_volume,
                incomplete_reason: entry.reason.clone(),
                verification,
                chunk_bytes: c.chunk_bytes,
            });
        }
    }
}

/// [`TapeAccess`] over a [`VirtualLibrary`] (a directory of tape images in named slots).
///
/// `fetch` checks that the tape is in a slot of the library (an operator puts it there:
/// the virtual stand-in for walking to the offsite room); `load` opens its image.
#[derive(Debug)]
pub struct LibraryTapes {
    library: VirtualLibrary,
}

impl LibraryTapes {
    /// Over `library`.
    pub fn new(library: VirtualLibrary) -> Self {
        Self { library }
    }
}

fn tape_err(tape: &str, file: u64, e: impl std::fmt::Display) -> Error {
    Error::Tape {
        tape: tape.to_owned(),
        file,
        reason: e.to_string(),
    }
}

impl TapeAccess for LibraryTapes {
    fn fetch(&mut self, barcode: &str, from: &Location) -> Result<()> {
        match self.library.slot_of(barcode) {
            Some(_) => Ok(()),
            None => Err(tape_err(
                barcode,
                0,
                format!("not in the library: bring it from {from} and put it in a slot"),
            )),
        }
    }

    fn load(&mut self, barcode: &str) -> Result<()> {
        self.library
            .load(barcode)
            .map(drop)
            .map_err(|e| tape_err(barcode, 0, e))
    }

    fn read_session(
        &mut self,
        _session: &str,
        volumes: &[TapeVolume],
        visit: &mut dyn FnMut(TapeItem<'_>) -> Result<()>,
    ) -> Result<()> {
        let Some(first) = volumes.first() else {
            return Err(tape_err("-", 0, "the session has no volumes"));
        };
        let device = self
            .library
            .load(&first.barcode)
            .map_err(|e| tape_err(&first.barcode, first.file, e))?;
        let mut changer = LibraryChanger::new(
            &self.library,
            volumes[1..].iter().map(|v| v.barcode.clone()).collect(),
            ChangerPurpose::Read,
        );
        let mut failure: Option<Error> = None;
        let result = read_session(Box::new(device), first.file, &mut changer, &mut |item| {
            let r = match item {
                SessionItem::Chunk { id, data } => visit(TapeItem::Chunk {
                    id: ChunkId(*id),
                    blob: data,
                }),
                SessionItem::Manifest { snapshot, data } => match snapshot.parse() {
                    Ok(snapshot) => visit(TapeItem::Manifest {
                        snapshot,
                        blob: data,
                    }),
                    Err(e) => Err(tape_err(
                        &first.barcode,
                        first.file,
                        format!("manifest record names {snapshot:?}: {e}"),
                    )),
                },
                SessionItem::Header(_) => Ok(()),
            };
            match r {
                Ok(()) => Ok(()),
                Err(e) => {
                    let reason = e.to_string();
                    failure = Some(e);
                    Err(jfiv_backup::tape::Error::Config { reason })
                }
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        result
            .map(drop)
            .map_err(|e| tape_err(&first.barcode, first.file, e))
    }
}
