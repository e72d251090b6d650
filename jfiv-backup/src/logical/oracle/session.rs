//! The small trait over an Oracle connection that the Oracle logic runs on (mocked in tests),
//! and its implementation over the `oracle` crate.

use std::fmt;
use std::io::Read;

use oracle::sql_type::{Lob, OracleType, Timestamp, ToSql};

use super::error::{FailureCode, OraFailure};
use super::sql::{BindType, oracle_number_text};
use crate::logical::value::{CivilDateTime, Decimal, TzOffset, Value, ValueKind};

/// Why a row could not be read.
#[derive(Debug)]
pub(crate) enum StreamError {
    /// The database failed.
    Oracle(OraFailure),
    /// A LOB is larger than the per-value limit.
    TooLarge {
        /// Column index.
        column: usize,
        /// Its size (bytes for a BLOB, characters for a CLOB).
        size: u64,
    },
    /// A value could not be represented exactly.
    Conversion {
        /// Column index.
        column: usize,
        /// Why.
        detail: String,
    },
}

/// Rows of a data query, one at a time.
pub(crate) trait RowStream: Send {
    /// The next row, converted to the requested kinds, or `None` at the end.
    fn next_row(&mut self) -> Result<Option<Vec<Value>>, StreamError>;
}

/// The operations the Oracle logic needs from a connection.
///
/// # Contract
/// `execute` runs one statement (DDL, DML or an anonymous PL/SQL block) with text binds;
/// `query_strings` runs a metadata query and returns every cell as text (`NULL` as `None`);
/// `query_rows` streams a data query, converting column `i` to `kinds[i]` exactly (or failing);
/// `insert_batch` array-inserts `rows`, binding column `i` as `types[i]`; nothing is committed
/// until `commit` (DDL commits implicitly, as in Oracle).
#[cfg_attr(test, mockall::automock)]
pub(crate) trait OracleSession: Send {
    /// Runs a statement.
    fn execute(&mut self, sql: &str, binds: &[String]) -> Result<(), OraFailure>;
    /// Runs a small query, every cell as text.
    fn query_strings(
        &mut self,
        sql: &str,
        binds: &[String],
    ) -> Result<Vec<Vec<Option<String>>>, OraFailure>;
    /// Streams a data query.
    fn query_rows(
        &mut self,
        sql: &str,
        kinds: &[ValueKind],
        lob_limit: u64,
    ) -> Result<Box<dyn RowStream>, OraFailure>;
    /// Array insert.
    fn insert_batch(
        &mut self,
        sql: &str,
        types: &[BindType],
        rows: &[Vec<Value>],
    ) -> Result<(), OraFailure>;
    /// Commits.
    fn commit(&mut self) -> Result<(), OraFailure>;
    /// Rolls back.
    fn rollback(&mut self) -> Result<(), OraFailure>;
    /// The server's version banner.
    fn server_version(&mut self) -> Result<String, OraFailure>;
}

/// Converts an `oracle` crate error, keeping its ORA-/DPI- code.
pub(crate) fn failure(e: &oracle::Error) -> OraFailure {
    let message = e
        .db_error()
        .map_or_else(|| e.to_string(), |d| d.message().to_owned());
    let code = match (e.oci_code(), e.dpi_code()) {
        (Some(n), _) => FailureCode::Ora(n),
        (None, Some(n)) => FailureCode::Dpi(n),
        (None, None) => return OraFailure::from_message(message),
    };
    OraFailure { code, message }
}

/// An Oracle session over a real connection.
pub(crate) struct ConnSession {
    conn: oracle::Connection,
}

impl fmt::Debug for ConnSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnSession").finish_non_exhaustive()
    }
}

impl ConnSession {
    /// Wraps a connection (autocommit off, the driver's default).
    pub(crate) fn new(conn: oracle::Connection) -> Self {
        Self { conn }
    }
}

fn text_binds(binds: &[String]) -> Vec<&dyn ToSql> {
    binds.iter().map(|b| b as &dyn ToSql).collect()
}

fn to_timestamp(t: &CivilDateTime, tz: Option<TzOffset>) -> Result<Timestamp, OraFailure> {
    let ts = Timestamp::new(
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond(),
    )
    .map_err(|e| failure(&e))?;
    match tz {
        Some(o) => ts.and_tz_offset(o.minutes() * 60).map_err(|e| failure(&e)),
        None => Ok(ts),
    }
}

/// A civil date-time (and offset) from a driver timestamp.
pub(crate) fn from_timestamp(
    ts: &Timestamp,
    with_nanos: bool,
) -> Result<(CivilDateTime, TzOffset), String> {
    let t = CivilDateTime::new(
        ts.year(),
        ts.month(),
        ts.day(),
        ts.hour(),
        ts.minute(),
        ts.second(),
        if with_nanos { ts.nanosecond() } else { 0 },
    )?;
    let tz = TzOffset::from_minutes(ts.tz_hour_offset() * 60 + ts.tz_minute_offset())?;
    Ok((t, tz))
}

fn oracle_type(t: BindType) -> OracleType {
    match t {
        BindType::Number => OracleType::Number(0, -127),
        BindType::Float => OracleType::BinaryDouble,
        BindType::Varchar(n) => OracleType::Varchar2(n),
        BindType::NVarchar(n) => OracleType::NVarchar2(n),
        BindType::Raw(n) => OracleType::Raw(n),
        BindType::Clob => OracleType::CLOB,
        BindType::NClob => OracleType::NCLOB,
        BindType::Blob => OracleType::BLOB,
        BindType::Date => OracleType::Date,
        BindType::Timestamp => OracleType::Timestamp(9),
        BindType::TimestampTz => OracleType::TimestampTZ(9),
    }
}

/// One bound value, owned for the duration of `append_row`.
enum Bound<'a> {
    Null,
    Text(&'a str),
    Owned(String),
    Bytes(&'a [u8]),
    Float(f64),
    Time(Timestamp),
}

impl<'a> Bound<'a> {
    fn of(v: &'a Value) -> Result<Self, OraFailure> {
        Ok(match v {
            Value::Null => Self::Null,
            Value::Integer(i) => Self::Owned(i.to_string()),
            Value::Number(d) => Self::Owned(oracle_number_text(d)),
            Value::Float(f) => Self::Float(*f),
            Value::Text(s) | Value::Clob(s) => Self::Text(s),
            Value::Raw(b) | Value::Blob(b) => Self::Bytes(b),
            Value::Date(t) | Value::Timestamp(t) => Self::Time(to_timestamp(t, None)?),
            Value::TimestampTz(t, tz) => Self::Time(to_timestamp(t, Some(*tz))?),
        })
    }

    fn as_sql(&self) -> &dyn ToSql {
        const NULL: Option<String> = None;
        match self {
            Self::Null => &NULL,
            Self::Text(s) => s,
            Self::Owned(s) => s,
            Self::Bytes(b) => b,
            Self::Float(f) => f,
            Self::Time(t) => t,
        }
    }
}

impl OracleSession for ConnSession {
    fn execute(&mut self, sql: &str, binds: &[String]) -> Result<(), OraFailure> {
        self.conn
            .execute(sql, &text_binds(binds))
            .map(|_| ())
            .map_err(|e| failure(&e))
    }

    fn query_strings(
        &mut self,
        sql: &str,
        binds: &[String],
    ) -> Result<Vec<Vec<Option<String>>>, OraFailure> {
        let rows = self
            .conn
            .query(sql, &text_binds(binds))
            .map_err(|e| failure(&e))?;
        let mut out = Vec::new();
        for row in rows {
            let row = row.map_err(|e| failure(&e))?;
            let n = row.sql_values().len();
            let cells = (0..n)
                .map(|i| row.get::<usize, Option<String>>(i))
                .collect::<oracle::Result<Vec<_>>>()
                .map_err(|e| failure(&e))?;
            out.push(cells);
        }
        Ok(out)
    }

    fn query_rows(
        &mut self,
        sql: &str,
        kinds: &[ValueKind],
        lob_limit: u64,
    ) -> Result<Box<dyn RowStream>, OraFailure> {
        let rows = self.conn.query(sql, &[]).map_err(|e| failure(&e))?;
        Ok(Box::new(ConnRows {
            rows,
            kinds: kinds.to_vec(),
            lob_limit,
        }))
    }

    fn insert_batch(
        &mut self,
        sql: &str,
        types: &[BindType],
        rows: &[Vec<Value>],
    ) -> Result<(), OraFailure> {
        let mut batch = self
            .conn
            .batch(sql, rows.len().max(1))
            .build()
            .map_err(|e| failure(&e))?;
        for (i, t) in types.iter().enumerate() {
            batch
                .set_type(i + 1, &oracle_type(*t))
                .map_err(|e| failure(&e))?;
        }
        for row in rows {
            let bound = row.iter().map(Bound::of).collect::<Result<Vec<_>, _>>()?;
            let refs: Vec<&dyn ToSql> = bound.iter().map(Bound::as_sql).collect();
            batch.append_row(&refs).map_err(|e| failure(&e))?;
        }
        batch.execute().map_err(|e| failure(&e))
    }

    fn commit(&mut self) -> Result<(), OraFailure> {
        self.conn.commit().map_err(|e| failure(&e))
    }

    fn rollback(&mut self) -> Result<(), OraFailure> {
        self.conn.rollback().map_err(|e| failure(&e))
    }

    fn server_version(&mut self) -> Result<String, OraFailure> {
        self.conn
            .server_version()
            .map(|(v, banner)| format!("{v} ({banner})"))
            .map_err(|e| failure(&e))
    }
}

struct ConnRows {
    rows: oracle::ResultSet<'static, oracle::Row>,
    kinds: Vec<ValueKind>,
    lob_limit: u64,
}

impl ConnRows {
    fn convert(&self, row: &oracle::Row, i: usize) -> Result<Value, StreamError> {
        let ora = |e: oracle::Error| StreamError::Oracle(failure(&e));
        let conv = |detail: String| StreamError::Conversion { column: i, detail };
        Ok(match self.kinds[i] {
            ValueKind::Number => match row.get::<usize, Option<String>>(i).map_err(ora)? {
                None => Value::Null,
                Some(s) => Value::Number(
                    Decimal::parse(&s).map_err(|t| conv(format!("not a decimal: {t:?}")))?,
                ),
            },
            ValueKind::Float => row
                .get::<usize, Option<f64>>(i)
                .map_err(ora)?
                .map_or(Value::Null, Value::Float),
            ValueKind::Text => row
                .get::<usize, Option<String>>(i)
                .map_err(ora)?
                .map_or(Value::Null, Value::Text),
            ValueKind::Raw => row
                .get::<usize, Option<Vec<u8>>>(i)
                .map_err(ora)?
                .map_or(Value::Null, Value::Raw),
            ValueKind::Clob => match row
                .get::<usize, Option<oracle::sql_type::Clob>>(i)
                .map_err(ora)?
            {
                None => Value::Null,
                Some(mut lob) => {
                    let size = lob.size().map_err(ora)?;
                    // A character may take up to 4 bytes in UTF-8.
                    if size.saturating_mul(4) > self.lob_limit {
                        return Err(StreamError::TooLarge { column: i, size });
                    }
                    let mut s = String::new();
                    lob.read_to_string(&mut s)
                        .map_err(|e| conv(format!("reading the CLOB: {e}")))?;
                    Value::Clob(s)
                }
            },
            ValueKind::Blob => match row
                .get::<usize, Option<oracle::sql_type::Blob>>(i)
                .map_err(ora)?
            {
                None => Value::Null,
                Some(mut lob) => {
                    let size = lob.size().map_err(ora)?;
                    if size > self.lob_limit {
                        return Err(StreamError::TooLarge { column: i, size });
                    }
                    let mut b = Vec::new();
                    lob.read_to_end(&mut b)
                        .map_err(|e| conv(format!("reading the BLOB: {e}")))?;
                    Value::Blob(b)
                }
            },
            k @ (ValueKind::Date | ValueKind::Timestamp | ValueKind::TimestampTz) => {
                match row.get::<usize, Option<Timestamp>>(i).map_err(ora)? {
                    None => Value::Null,
                    Some(ts) => {
                        let (t, tz) = from_timestamp(&ts, k != ValueKind::Date).map_err(conv)?;
                        match k {
                            ValueKind::Date => Value::Date(t),
                            ValueKind::Timestamp => Value::Timestamp(t),
                            _ => Value::TimestampTz(t, tz),
                        }
                    }
                }
            }
            other => return Err(conv(format!("no Oracle conversion to {other:?}"))),
        })
    }
}

impl RowStream for ConnRows {
    fn next_row(&mut self) -> Result<Option<Vec<Value>>, StreamError> {
        let Some(row) = self.rows.next() else {
            return Ok(None);
        };
        let row = row.map_err(|e| StreamError::Oracle(failure(&e)))?;
        let values = (0..self.kinds.len())
            .map(|i| self.convert(&row, i))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(values))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_timestamps_convert_exactly_both_ways() {
        let t = CivilDateTime::new(2024, 2, 29, 23, 59, 58, 123_456_789).unwrap();
        let tz = TzOffset::from_minutes(-570).unwrap();
        let ts = to_timestamp(&t, Some(tz)).unwrap();
        assert_eq!((ts.tz_hour_offset(), ts.tz_minute_offset()), (-9, -30));
        let (back, back_tz) = from_timestamp(&ts, true).unwrap();
        assert_eq!((back, back_tz), (t, tz));
        // A DATE has no fraction.
        let (d, _) = from_timestamp(&ts, false).unwrap();
        assert_eq!(d.nanosecond(), 0);
        assert_eq!(d.second(), 58);
    }

    #[test]
    fn driver_errors_keep_their_codes() {
        #[allow(deprecated)]
        let e = oracle::Error::OciError(oracle::DbError::new(
            1017,
            0,
            "ORA-01017: invalid username/password; logon denied",
            "dpiConn_create",
            "",
        ));
        let f = failure(&e);
        assert_eq!(f.code, FailureCode::Ora(1017));
        #[allow(deprecated)]
        let e = oracle::Error::DpiError(oracle::DbError::new(
            0,
            0,
            "DPI-1047: Cannot locate a 64-bit Oracle Client library",
            "dpiContext_create",
            "",
        ));
        assert_eq!(failure(&e).code, FailureCode::Dpi(1047));
    }
}
