//! The typed, portable values of the logical row format.
//!
//! A [`Value`] keeps what the database stored, exactly: an Oracle `NUMBER` travels as its decimal
//! text (38 significant digits and an exponent do not fit an `f64`), a `DATE` as its civil fields,
//! a `BINARY_DOUBLE` or SQLite `REAL` as its IEEE-754 bits. Nothing is rounded or re-encoded on the
//! way; see `FORMAT.md` ("Logical dump") for the byte layout.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One value of one column of one row.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// SQL `NULL`.
    Null,
    /// A 64-bit signed integer (SQLite `INTEGER` storage class).
    Integer(i64),
    /// An exact decimal number (Oracle `NUMBER`, `FLOAT`), as validated decimal text.
    Number(Decimal),
    /// An IEEE-754 double (SQLite `REAL`, Oracle `BINARY_DOUBLE`/`BINARY_FLOAT`), bit-exact.
    Float(f64),
    /// Character data that fits a row (`VARCHAR2`, `NVARCHAR2`, `CHAR` with its padding, SQLite
    /// `TEXT`).
    Text(String),
    /// A character LOB (`CLOB`, `NCLOB`); written in segments.
    Clob(String),
    /// Short binary data (`RAW`).
    Raw(Vec<u8>),
    /// A binary LOB (`BLOB`, SQLite `BLOB` storage class); written in segments.
    Blob(Vec<u8>),
    /// An Oracle `DATE`: civil date and time to the second, no time zone.
    Date(CivilDateTime),
    /// A `TIMESTAMP`: civil date and time to the nanosecond, no time zone.
    Timestamp(CivilDateTime),
    /// A `TIMESTAMP WITH TIME ZONE`: civil (local) date and time and its offset from UTC.
    TimestampTz(CivilDateTime, TzOffset),
}

impl Value {
    /// The kind of this value ([`ValueKind::Null`] for `NULL`).
    #[must_use]
    pub fn kind(&self) -> ValueKind {
        match self {
            Self::Null => ValueKind::Null,
            Self::Integer(_) => ValueKind::Integer,
            Self::Number(_) => ValueKind::Number,
            Self::Float(_) => ValueKind::Float,
            Self::Text(_) => ValueKind::Text,
            Self::Clob(_) => ValueKind::Clob,
            Self::Raw(_) => ValueKind::Raw,
            Self::Blob(_) => ValueKind::Blob,
            Self::Date(_) => ValueKind::Date,
            Self::Timestamp(_) => ValueKind::Timestamp,
            Self::TimestampTz(..) => ValueKind::TimestampTz,
        }
    }

    /// Approximate number of bytes this value occupies in memory (used to bound batches).
    #[must_use]
    pub fn approx_size(&self) -> usize {
        match self {
            Self::Number(d) => d.as_str().len() + 8,
            Self::Text(s) | Self::Clob(s) => s.len() + 8,
            Self::Raw(b) | Self::Blob(b) => b.len() + 8,
            _ => 16,
        }
    }
}

/// The kind of a value, also used as the declared logical type of a column.
///
/// A column of kind [`ValueKind::Any`] (SQLite's dynamic typing) accepts values of every kind;
/// a column of any other kind accepts `NULL` and values of its own kind only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ValueKind {
    /// `NULL` (only as a value's kind, never a column's).
    Null,
    /// See [`Value::Integer`].
    Integer,
    /// See [`Value::Number`].
    Number,
    /// See [`Value::Float`].
    Float,
    /// See [`Value::Text`].
    Text,
    /// See [`Value::Clob`].
    Clob,
    /// See [`Value::Raw`].
    Raw,
    /// See [`Value::Blob`].
    Blob,
    /// See [`Value::Date`].
    Date,
    /// See [`Value::Timestamp`].
    Timestamp,
    /// See [`Value::TimestampTz`].
    TimestampTz,
    /// A column that may hold any kind (SQLite).
    Any,
}

impl ValueKind {
    /// Whether a column of this kind accepts `value`.
    #[must_use]
    pub fn accepts(self, value: &Value) -> bool {
        let k = value.kind();
        self == Self::Any || k == Self::Null || k == self
    }
}

/// An exact decimal number as text: `[+-]? (digits [. digits*] | . digits) ([eE] [+-]? digits)?`.
///
/// The text is kept as given once validated, so no digit is ever lost or invented.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Decimal(String);

impl Decimal {
    /// Validates decimal text.
    ///
    /// # Errors
    /// Returns the rejected text when it is not a decimal literal.
    pub fn parse(text: &str) -> Result<Self, String> {
        if is_decimal(text) {
            Ok(Self(text.to_owned()))
        } else {
            Err(text.to_owned())
        }
    }

    /// The decimal text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value as an `i64` when it is a plain integer literal that fits (no fraction, no
    /// exponent): the only case where converting it is lossless by construction.
    #[must_use]
    pub fn as_i64(&self) -> Option<i64> {
        let t = self.0.strip_prefix('+').unwrap_or(&self.0);
        let digits = t.strip_prefix('-').unwrap_or(t);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    }
}

impl fmt::Debug for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Decimal({})", self.0)
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_decimal(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - int_start;
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let s = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = i - s;
    }
    if int_digits + frac_digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let s = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == s {
            return false;
        }
    }
    i == b.len()
}

/// A civil (wall-clock) date and time, as stored by Oracle `DATE`/`TIMESTAMP`.
///
/// Years run from -4712 to 9999 (Oracle's range; year 0 does not exist in Oracle but is
/// accepted here as astronomical year numbering). Invalid dates (30 February) are rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CivilDateTime {
    year: i16,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
    nanosecond: u32,
}

impl CivilDateTime {
    /// Builds a validated date-time.
    ///
    /// # Errors
    /// Returns a description of the first field out of range.
    pub fn new(
        year: i32,
        month: u32,
        day: u32,
        hour: u32,
        minute: u32,
        second: u32,
        nanosecond: u32,
    ) -> Result<Self, String> {
        let year16 = i16::try_from(year)
            .ok()
            .filter(|y| (-4712..=9999).contains(y))
            .ok_or_else(|| format!("year {year} out of range -4712..=9999"))?;
        if chrono::NaiveDate::from_ymd_opt(year, month, day).is_none() {
            return Err(format!("invalid date {year}-{month}-{day}"));
        }
        if hour > 23 || minute > 59 || second > 59 || nanosecond > 999_999_999 {
            return Err(format!(
                "invalid time {hour}:{minute}:{second}.{nanosecond:09}"
            ));
        }
        // The checks above bound every field to its range, so the narrowing casts are exact.
        #[allow(clippy::cast_possible_truncation)]
        Ok(Self {
            year: year16,
            month: month as u8,
            day: day as u8,
            hour: hour as u8,
            minute: minute as u8,
            second: second as u8,
            nanosecond,
        })
    }

    /// Year.
    #[must_use]
    pub fn year(&self) -> i32 {
        i32::from(self.year)
    }
    /// Month, 1 to 12.
    #[must_use]
    pub fn month(&self) -> u32 {
        u32::from(self.month)
    }
    /// Day of the month, 1 to 31.
    #[must_use]
    pub fn day(&self) -> u32 {
        u32::from(self.day)
    }
    /// Hour, 0 to 23.
    #[must_use]
    pub fn hour(&self) -> u32 {
        u32::from(self.hour)
    }
    /// Minute, 0 to 59.
    #[must_use]
    pub fn minute(&self) -> u32 {
        u32::from(self.minute)
    }
    /// Second, 0 to 59.
    #[must_use]
    pub fn second(&self) -> u32 {
        u32::from(self.second)
    }
    /// Nanosecond, 0 to 999 999 999.
    #[must_use]
    pub fn nanosecond(&self) -> u32 {
        self.nanosecond
    }

    /// ISO 8601 text `YYYY-MM-DD HH:MM:SS[.fffffffff]` (fraction only when non-zero, trailing
    /// zeros trimmed), as SQLite's date functions read it.
    #[must_use]
    pub fn to_iso(&self) -> String {
        let mut s = if self.year < 0 {
            format!("-{:04}", -i32::from(self.year))
        } else {
            format!("{:04}", self.year)
        };
        s.push_str(&format!(
            "-{:02}-{:02} {:02}:{:02}:{:02}",
            self.month, self.day, self.hour, self.minute, self.second
        ));
        if self.nanosecond != 0 {
            let frac = format!("{:09}", self.nanosecond);
            s.push('.');
            s.push_str(frac.trim_end_matches('0'));
        }
        s
    }
}

/// A time-zone offset from UTC, in minutes (-15:59 to +15:59, Oracle's range).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TzOffset(i16);

impl TzOffset {
    /// Builds an offset from minutes east of UTC.
    ///
    /// # Errors
    /// Returns a description when the offset is beyond ±15:59.
    pub fn from_minutes(minutes: i32) -> Result<Self, String> {
        i16::try_from(minutes)
            .ok()
            .filter(|m| m.abs() < 16 * 60)
            .map(Self)
            .ok_or_else(|| format!("time-zone offset of {minutes} minutes out of range"))
    }

    /// Minutes east of UTC.
    #[must_use]
    pub fn minutes(self) -> i32 {
        i32::from(self.0)
    }

    /// `+HH:MM` text.
    #[must_use]
    pub fn to_iso(self) -> String {
        let m = i32::from(self.0);
        let sign = if m < 0 { '-' } else { '+' };
        format!("{sign}{:02}:{:02}", m.abs() / 60, m.abs() % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_validated_and_kept_verbatim() {
        for ok in [
            "0",
            "-12.5",
            "+3",
            ".5",
            "-.5",
            "7.",
            "12345678901234567890123456789012345678",
            "1E+125",
            "-9.99e-130",
        ] {
            assert_eq!(Decimal::parse(ok).unwrap().as_str(), ok);
        }
        for bad in ["", "-", ".", "1e", "1,5", "12a", "1.2.3", " 1", "e5", "NaN"] {
            assert!(Decimal::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn only_plain_integers_convert_to_i64() {
        assert_eq!(Decimal::parse("-42").unwrap().as_i64(), Some(-42));
        assert_eq!(
            Decimal::parse("9223372036854775807").unwrap().as_i64(),
            Some(i64::MAX)
        );
        assert_eq!(
            Decimal::parse("9223372036854775808").unwrap().as_i64(),
            None
        );
        assert_eq!(Decimal::parse("1.0").unwrap().as_i64(), None);
        assert_eq!(Decimal::parse("1E3").unwrap().as_i64(), None);
    }

    #[test]
    fn civil_date_times_are_validated_and_printed() {
        assert!(CivilDateTime::new(2023, 2, 29, 0, 0, 0, 0).is_err());
        assert!(CivilDateTime::new(2024, 2, 29, 24, 0, 0, 0).is_err());
        assert!(CivilDateTime::new(10000, 1, 1, 0, 0, 0, 0).is_err());
        let t = CivilDateTime::new(2024, 2, 29, 7, 5, 9, 120_000_000).unwrap();
        assert_eq!(t.to_iso(), "2024-02-29 07:05:09.12");
        let bc = CivilDateTime::new(-44, 3, 15, 12, 0, 0, 0).unwrap();
        assert_eq!(bc.to_iso(), "-0044-03-15 12:00:00");
        assert_eq!(TzOffset::from_minutes(-330).unwrap().to_iso(), "-05:30");
        assert!(TzOffset::from_minutes(16 * 60).is_err());
    }

    #[test]
    fn column_kinds_accept_their_values_and_null() {
        let n = Value::Number(Decimal::parse("1").unwrap());
        assert!(ValueKind::Number.accepts(&n));
        assert!(ValueKind::Number.accepts(&Value::Null));
        assert!(!ValueKind::Text.accepts(&n));
        assert!(ValueKind::Any.accepts(&Value::Blob(vec![1])));
    }
}
