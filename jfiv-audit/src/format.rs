//! The on-disk format of the file log: period files, record lines, headers, seals, checkpoints.
//!
//! # Directory
//! ```text
//! LOG_DIR/
//!   .lock                 held (flock) by the one writer
//!   2026-03.jsonl         one period file per period (monthly: YYYY-MM, daily: YYYY-MM-DD)
//!   2026-02.seal          the signed seal of a closed period (kept after pruning)
//!   2025-01.pruned        the signed marker of a pruned period (its .jsonl is gone)
//! ```
//!
//! # Trailing-field lines
//! Every line (record, header, seal, prune marker, checkpoint) is one JSON object written by
//! `serde_json` in compact form, whose LAST field is its authenticator:
//! `{...,"chain":"<64 hex>"}`, `{...,"mac":"<64 hex>"}` or `{...,"signature":"<128 hex>"}`.
//! The **canonical bytes** of the line are the line without that last field: the bytes up to
//! (excluding) `,"chain":"`, followed by `}`. They are exactly the compact `serde_json`
//! serialisation of the object without its authenticator, and authenticators are computed over
//! the bytes as written (a reader never re-serialises).
//!
//! # Record line
//! `{"seq":N,"event":{...AuditEvent...},"chain":"<hex>"}` then `\n`. Canonical bytes:
//! `{"seq":N,"event":{...}}`. With `K` the record-chain key (BLAKE3 `derive_key` of the MAC key,
//! context `jfiv-audit 2026-12 record chain v1`):
//! `chain(N) = BLAKE3-keyed(K, chain(N-1) || canonical(N))` (32 bytes, hex in the line), and
//! `chain(-1) = BLAKE3-keyed(K, "jfiv-audit genesis\0" || log_id's 16 bytes)`.
//! The chain runs across periods without restarting.
//!
//! # Header line
//! The first line of each period file: `{"jfiv_audit":1,"log_id":..,"period":..,"first_seq":..,
//! "prev_chain":..,"prev_period":..,"key_fingerprint":..,"created_at":..,"mac":"<hex>"}`, the MAC
//! being BLAKE3-keyed under the header key (context `jfiv-audit 2026-12 period header v1`) over
//! its canonical bytes. `prev_chain` is the chain value of the record `first_seq - 1` (the last
//! record of the previous period), so that periods join and a missing period is a gap.
//!
//! # Seals, prune markers, checkpoints
//! Signed with ed25519 over `domain || canonical`, domains `jfiv-audit seal v1\0`,
//! `jfiv-audit pruned v1\0`, `jfiv-audit checkpoint v1\0`. A seal states a closed period's
//! `first_seq`, `records`, `prev_chain` and `final_chain`; a checkpoint states the log's
//! `records` (next sequence number) and `chain` head (the chain value of record `records - 1`,
//! or the genesis value for an empty log).

use std::path::Path;

use chrono::{DateTime, Datelike, Months, NaiveDate, TimeZone, Utc};
use ed25519_dalek::Signature;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::keys::{AuditKeys, AuditVerifyingKey};
use crate::{AuditEvent, Error, IntegrityKind, Result};

pub(crate) const SEAL_DOMAIN: &[u8] = b"jfiv-audit seal v1\0";
pub(crate) const PRUNED_DOMAIN: &[u8] = b"jfiv-audit pruned v1\0";
pub(crate) const CHECKPOINT_DOMAIN: &[u8] = b"jfiv-audit checkpoint v1\0";

/// How the log is cut into periods (the unit of sealing and of pruning).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PeriodScheme {
    /// One period per calendar month (UTC), named `YYYY-MM`. The default.
    #[default]
    Monthly,
    /// One period per day (UTC), named `YYYY-MM-DD`.
    Daily,
}

impl PeriodScheme {
    /// The name of the period containing `time`.
    pub fn period_of(self, time: DateTime<Utc>) -> String {
        match self {
            PeriodScheme::Monthly => format!("{:04}-{:02}", time.year(), time.month()),
            PeriodScheme::Daily => time.format("%Y-%m-%d").to_string(),
        }
    }

    /// The start (inclusive) and end (exclusive) of a period, from its name. `None` if `name`
    /// is not a period name (of either scheme: names tell their scheme by their length).
    pub fn bounds(name: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let (start, end) = if name.len() == 7 {
            let d = NaiveDate::parse_from_str(&format!("{name}-01"), "%Y-%m-%d").ok()?;
            (d, d.checked_add_months(Months::new(1))?)
        } else if name.len() == 10 {
            let d = NaiveDate::parse_from_str(name, "%Y-%m-%d").ok()?;
            (d, d.succ_opt()?)
        } else {
            return None;
        };
        let utc = |d: NaiveDate| Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default());
        Some((utc(start), utc(end)))
    }
}

/// Splits a trailing-field line (without its `\n`) into its canonical bytes, minus the final
/// `}` (to which the caller appends `}`), and the hex value of the trailing field `name`.
pub(crate) fn split_trailing<'a>(line: &'a [u8], name: &str) -> Option<(&'a [u8], &'a [u8])> {
    // ...,"name":"<hex>"}
    let body = line.strip_suffix(b"\"}")?;
    let quote = body.iter().rposition(|&b| b == b'"')?;
    let value = &body[quote + 1..];
    let before = &body[..quote];
    let key = format!(",\"{name}\":");
    let prefix = before.strip_suffix(key.as_bytes())?;
    Some((prefix, value))
}

/// Appends `,"name":"value"}` to canonical bytes minus their final `}`.
pub(crate) fn join_trailing(canonical: &[u8], name: &str, value: &str) -> Vec<u8> {
    let prefix = canonical.strip_suffix(b"}").unwrap_or(canonical);
    let mut line = Vec::with_capacity(prefix.len() + name.len() + value.len() + 8);
    line.extend_from_slice(prefix);
    line.extend_from_slice(b",\"");
    line.extend_from_slice(name.as_bytes());
    line.extend_from_slice(b"\":\"");
    line.extend_from_slice(value.as_bytes());
    line.extend_from_slice(b"\"}");
    line
}

/// Decodes lowercase hex only (as written): an uppercase digit is a modified byte.
pub(crate) fn decode_lower_hex(src: &[u8], dst: &mut [u8]) -> Option<()> {
    if !src.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    hex::decode_to_slice(src, dst).ok()
}

fn canonical_of(prefix: &[u8]) -> Vec<u8> {
    let mut c = Vec::with_capacity(prefix.len() + 1);
    c.extend_from_slice(prefix);
    c.push(b'}');
    c
}

/// Length of `,"chain":"<64 hex>"}` at the end of a record line.
pub(crate) const CHAIN_SUFFIX_LEN: usize = 10 + 64 + 2;

#[derive(Serialize)]
struct RecordOut<'a> {
    seq: u64,
    event: &'a AuditEvent,
}

/// Appends the record line (with its `\n`) for `event` at `seq` after `prev` to `out`, and
/// returns the new chain value.
pub(crate) fn encode_record(
    keys: &AuditKeys,
    prev: &blake3::Hash,
    seq: u64,
    event: &AuditEvent,
    out: &mut Vec<u8>,
) -> Result<blake3::Hash> {
    let start = out.len();
    serde_json::to_writer(&mut *out, &RecordOut { seq, event }).map_err(|e| Error::Closed {
        reason: format!("cannot serialise an audit event: {e}"),
    })?;
    let mut h = keys.chain_hasher();
    h.update(prev.as_bytes());
    h.update(&out[start..]);
    let chain = h.finalize();
    out.pop(); // the closing brace
    out.extend_from_slice(b",\"chain\":\"");
    out.extend_from_slice(chain.to_hex().as_bytes());
    out.extend_from_slice(b"\"}\n");
    Ok(chain)
}

/// The chain value computed for a record line (without `\n`) after `prev`, and the chain value
/// stored in it; `None` if the line does not end with a chain field.
pub(crate) fn record_chain(
    keys: &AuditKeys,
    prev: &blake3::Hash,
    line: &[u8],
) -> Option<(blake3::Hash, [u8; 32])> {
    if line.len() < CHAIN_SUFFIX_LEN + 2 {
        return None;
    }
    let (prefix, suffix) = line.split_at(line.len() - CHAIN_SUFFIX_LEN);
    let hex_part = suffix
        .strip_prefix(b",\"chain\":\"")?
        .strip_suffix(b"\"}")?;
    let mut stored = [0u8; 32];
    decode_lower_hex(hex_part, &mut stored)?;
    let mut h = keys.chain_hasher();
    h.update(prev.as_bytes());
    h.update(prefix);
    h.update(b"}");
    Some((h.finalize(), stored))
}

/// The sequence number at the start of a record line (`{"seq":N,"event":`).
pub(crate) fn record_seq(line: &[u8]) -> Option<u64> {
    let rest = line.strip_prefix(b"{\"seq\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 20 || !rest[digits..].starts_with(b",\"event\":") {
        return None;
    }
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

#[derive(Deserialize)]
pub(crate) struct RecordIn {
    pub(crate) seq: u64,
    pub(crate) event: AuditEvent,
}

/// The first line of a period file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Header {
    pub(crate) jfiv_audit: u32,
    pub(crate) log_id: Uuid,
    pub(crate) period: String,
    pub(crate) first_seq: u64,
    pub(crate) prev_chain: String,
    pub(crate) prev_period: Option<String>,
    pub(crate) key_fingerprint: String,
    pub(crate) created_at: DateTime<Utc>,
}

impl Header {
    /// The header line, with its MAC and `\n`.
    pub(crate) fn encode(&self, keys: &AuditKeys) -> Vec<u8> {
        let canonical = serde_json::to_vec(self).unwrap_or_default();
        let mac = keys.header_mac(&canonical);
        let mut line = join_trailing(&canonical, "mac", &mac.to_hex());
        line.push(b'\n');
        line
    }

    /// Parses and checks a header line (without `\n`) of `path`. A header naming other keys is
    /// [`Error::WrongKey`]; anything else wrong is [`IntegrityKind::BadHeader`].
    pub(crate) fn decode(keys: &AuditKeys, path: &Path, line: &[u8]) -> Result<Header> {
        let bad = |reason: &str| {
            Error::integrity(
                IntegrityKind::BadHeader {
                    reason: reason.to_owned(),
                },
                path,
                Some(0),
                None,
            )
        };
        let (prefix, mac_hex) = split_trailing(line, "mac").ok_or_else(|| bad("no mac field"))?;
        let canonical = canonical_of(prefix);
        let header: Header =
            serde_json::from_slice(&canonical).map_err(|e| bad(&format!("not a header: {e}")))?;
        if header.jfiv_audit != 1 {
            return Err(bad("unknown format version"));
        }
        if header.key_fingerprint != keys.fingerprint() {
            return Err(Error::WrongKey {
                path: path.to_owned(),
                expected: keys.fingerprint().to_owned(),
                found: header.key_fingerprint,
            });
        }
        let mut mac = [0u8; 32];
        decode_lower_hex(mac_hex, &mut mac).ok_or_else(|| bad("mac is not lowercase hex"))?;
        if keys.header_mac(&canonical) != blake3::Hash::from_bytes(mac) {
            return Err(bad("header MAC does not match"));
        }
        Ok(header)
    }
}

/// A signed entry of the log directory: the seal of a closed period or the marker of a pruned
/// one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub(crate) enum SignedEntry {
    Seal(Seal),
    Pruned(Pruned),
}

/// The signed statement that a period is closed, and what it held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seal {
    /// The log.
    pub log_id: Uuid,
    /// The period sealed.
    pub period: String,
    /// Its first sequence number.
    pub first_seq: u64,
    /// How many records it holds.
    pub records: u64,
    /// The chain value before its first record (hex).
    pub prev_chain: String,
    /// The chain value of its last record (hex; `prev_chain` if it holds none).
    pub final_chain: String,
    /// When it was sealed.
    pub sealed_at: DateTime<Utc>,
    /// The fingerprint of the keys.
    pub key_fingerprint: String,
}

/// The signed statement that a sealed period was pruned by the retention policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pruned {
    /// The log.
    pub log_id: Uuid,
    /// The period pruned.
    pub period: String,
    /// When.
    pub pruned_at: DateTime<Utc>,
}

impl SignedEntry {
    pub(crate) fn domain(&self) -> &'static [u8] {
        match self {
            SignedEntry::Seal(_) => SEAL_DOMAIN,
            SignedEntry::Pruned(_) => PRUNED_DOMAIN,
        }
    }

    pub(crate) fn encode(&self, keys: &AuditKeys) -> Vec<u8> {
        let canonical = serde_json::to_vec(self).unwrap_or_default();
        let signature = keys.sign(self.domain(), &canonical);
        let mut line = join_trailing(&canonical, "signature", &hex::encode(signature.to_bytes()));
        line.push(b'\n');
        line
    }

    pub(crate) fn decode(public: &AuditVerifyingKey, path: &Path, bytes: &[u8]) -> Result<Self> {
        let bad = |reason: &str| {
            Error::integrity(
                IntegrityKind::BadSeal {
                    reason: reason.to_owned(),
                },
                path,
                Some(0),
                None,
            )
        };
        let line = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        let (canonical, signature) = verify_signed(public, line, |c| {
            serde_json::from_slice::<SignedEntry>(c)
                .map(|e| e.domain())
                .map_err(|e| format!("not a seal: {e}"))
        })
        .map_err(|reason| bad(&reason))?;
        let _ = signature;
        serde_json::from_slice(&canonical).map_err(|e| bad(&format!("not a seal: {e}")))
    }
}

/// Splits a signed line, checks its signature under the domain `domain_of(canonical)` returns.
fn verify_signed(
    public: &AuditVerifyingKey,
    line: &[u8],
    domain_of: impl FnOnce(&[u8]) -> std::result::Result<&'static [u8], String>,
) -> std::result::Result<(Vec<u8>, Signature), String> {
    let (prefix, sig_hex) =
        split_trailing(line, "signature").ok_or_else(|| "no signature field".to_owned())?;
    let canonical = canonical_of(prefix);
    let domain = domain_of(&canonical)?;
    let mut sig = [0u8; 64];
    decode_lower_hex(sig_hex, &mut sig)
        .ok_or_else(|| "signature is not lowercase hex".to_owned())?;
    if !public.verify(domain, &canonical, &sig) {
        return Err("signature does not verify under this log's public key".to_owned());
    }
    Ok((canonical, Signature::from_bytes(&sig)))
}

/// A signed statement of the log's state: how many records it holds and its chain head.
///
/// Export it ([`write_to`](Self::write_to)) and keep it away from the log host (printed, on
/// the night's backup tape, on another server): checked against it, the log cannot lose its
/// tail or be rolled back without detection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The log.
    pub log_id: Uuid,
    /// Number of records covered: sequence numbers `0..records`.
    pub records: u64,
    /// Chain value of record `records - 1` (hex), or the log's genesis value if `records == 0`.
    pub chain: String,
    /// The period of the last record.
    pub period: String,
    /// When the checkpoint was made.
    pub time: DateTime<Utc>,
    /// The fingerprint of the keys.
    pub key_fingerprint: String,
    /// The ed25519 signature (hex) over the checkpoint's canonical bytes.
    #[serde(skip)]
    pub signature: String,
}

impl Checkpoint {
    pub(crate) fn sign(mut self, keys: &AuditKeys) -> Self {
        let canonical = serde_json::to_vec(&self).unwrap_or_default();
        self.signature = hex::encode(keys.sign(CHECKPOINT_DOMAIN, &canonical).to_bytes());
        self
    }

    /// The checkpoint as one line of text (JSON, with its signature as last field, and `\n`).
    pub fn to_line(&self) -> String {
        let canonical = serde_json::to_vec(self).unwrap_or_default();
        let mut line = String::from_utf8(join_trailing(&canonical, "signature", &self.signature))
            .unwrap_or_default();
        line.push('\n');
        line
    }

    /// Parses a checkpoint line WITHOUT checking its signature (see
    /// [`verify_signature`](Self::verify_signature); log verification checks it).
    ///
    /// # Errors
    /// [`IntegrityKind::BadCheckpoint`] if the text is not a checkpoint.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let bad = |reason: String| {
            Error::integrity(IntegrityKind::BadCheckpoint { reason }, path, Some(0), None)
        };
        let line = text.trim_end_matches('\n').as_bytes();
        let (prefix, sig) =
            split_trailing(line, "signature").ok_or_else(|| bad("no signature field".into()))?;
        let mut checkpoint: Checkpoint = serde_json::from_slice(&canonical_of(prefix))
            .map_err(|e| bad(format!("not a checkpoint: {e}")))?;
        checkpoint.signature = String::from_utf8_lossy(sig).into_owned();
        Ok(checkpoint)
    }

    /// Whether the signature is valid under `public` (needs no secret).
    pub fn verify_signature(&self, public: &AuditVerifyingKey) -> bool {
        let canonical = serde_json::to_vec(self).unwrap_or_default();
        let mut sig = [0u8; 64];
        decode_lower_hex(self.signature.as_bytes(), &mut sig).is_some()
            && public.verify(CHECKPOINT_DOMAIN, &canonical, &sig)
    }

    /// Writes the checkpoint to a new file (never overwrites), fsync'd.
    ///
    /// # Errors
    /// [`Error::Io`], including when `path` exists.
    pub fn write_to(&self, path: &Path) -> Result<()> {
        crate::fsutil::write_new_atomic(path, self.to_line().as_bytes())
    }

    /// Reads a checkpoint file written by [`write_to`](Self::write_to), without checking its
    /// signature.
    ///
    /// # Errors
    /// [`Error::Io`], or [`IntegrityKind::BadCheckpoint`] if it is not a checkpoint.
    pub fn read_from(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
        Self::parse(&text, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn period_names_and_bounds() {
        let t = Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 59).unwrap();
        assert_eq!(PeriodScheme::Monthly.period_of(t), "2026-12");
        assert_eq!(PeriodScheme::Daily.period_of(t), "2026-12-31");
        let (s, e) = PeriodScheme::bounds("2026-12").unwrap();
        assert_eq!(s, Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap());
        assert_eq!(e, Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap());
        let (s, e) = PeriodScheme::bounds("2026-02-28").unwrap();
        assert_eq!(e - s, chrono::Duration::days(1));
        assert!(PeriodScheme::bounds("2026-13").is_none());
        assert!(PeriodScheme::bounds("garbage").is_none());
    }

    #[test]
    fn trailing_field_round_trip() {
        let line = join_trailing(br#"{"a":1}"#, "mac", "00ff");
        assert_eq!(line, br#"{"a":1,"mac":"00ff"}"#);
        let (prefix, value) = split_trailing(&line, "mac").unwrap();
        assert_eq!(prefix, br#"{"a":1"#);
        assert_eq!(value, b"00ff");
        assert!(split_trailing(&line, "chain").is_none());
    }

    #[test]
    fn record_seq_parses_only_well_formed_prefixes() {
        assert_eq!(record_seq(br#"{"seq":42,"event":{}}"#), Some(42));
        assert_eq!(record_seq(br#"{"seq":,"event":{}}"#), None);
        assert_eq!(record_seq(br#"{"seX":42,"event":{}}"#), None);
        assert_eq!(record_seq(br#"{"seq":4a,"event":{}}"#), None);
    }
}
