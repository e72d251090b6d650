//! Human-readable one-line form of a stored event (what `history` prints to a patient or an
//! auditor).

use std::fmt;

use crate::{Origin, Outcome, Recorded};

impl fmt::Display for Recorded {
    /// `#seq time actor (profile) action [patient/cycle] [object] from origin outcome: details`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.event;
        write!(
            f,
            "#{} {} {}",
            self.seq,
            e.time.format("%Y-%m-%d %H:%M:%SZ"),
            e.actor.user_id
        )?;
        if let Some(profile) = &e.actor.profile {
            write!(f, " ({profile})")?;
        }
        write!(f, " {}", e.action)?;
        if let Some(record) = &e.record {
            write!(f, " patient {}", record.patient_id)?;
            if let Some(cycle) = &record.cycle_id {
                write!(f, " cycle {cycle}")?;
            }
        }
        if let Some(object) = &e.object {
            write!(f, " [{object}]")?;
        }
        match &e.origin {
            Origin::Local { workstation } => write!(f, " from workstation {workstation}")?,
            Origin::Remote {
                client_ip,
                certificate_fingerprint,
            } => {
                write!(f, " from {client_ip} (VPN")?;
                if let Some(fp) = certificate_fingerprint {
                    write!(f, ", certificate {}", &fp[..fp.len().min(16)])?;
                }
                write!(f, ")")?;
            }
            Origin::System { host } => write!(f, " on {host}")?,
        }
        let outcome = match e.outcome {
            Outcome::Success => "ok",
            Outcome::Failure => "FAILED",
            Outcome::Refused => "REFUSED",
        };
        write!(f, " {outcome}")?;
        if !e.details.is_empty() {
            write!(f, ": {}", e.details)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use crate::{Action, Actor, AuditEvent, Origin, RecordRef, Recorded};

    #[test]
    fn one_line_names_who_when_what_which_record_and_where() {
        let r = Recorded {
            seq: 7,
            event: AuditEvent::new(
                Utc.with_ymd_and_hms(2026, 3, 2, 8, 15, 0).unwrap(),
                Actor::new("dr.martin", "clinician"),
                Origin::Remote {
                    client_ip: "10.8.0.12".parse().unwrap(),
                    certificate_fingerprint: Some("ab12".into()),
                },
                Action::RecordRead,
            )
            .with_record(RecordRef::cycle("P000123", "FIV-2026-004")),
        };
        assert_eq!(
            r.to_string(),
            "#7 2026-03-02 08:15:00Z dr.martin (clinician) record-read patient P000123 cycle FIV-2026-004 from 10.8.0.12 (VPN, certificate ab12) ok"
        );
    }
}
