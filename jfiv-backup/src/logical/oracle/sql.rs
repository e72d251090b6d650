//! The Oracle SQL this module issues, and the Oracle type mapping (pure functions).

use crate::logical::error::{Error, Result};
use crate::logical::format::{ColumnDef, SequenceDef, TableDef};
use crate::logical::value::ValueKind;

/// Session settings applied right after connecting: implicit conversions (a decimal bound as
/// text, say) then never depend on the server's French or American NLS defaults, and
/// `TIMESTAMP WITH LOCAL TIME ZONE` values are read in UTC.
pub(crate) const SESSION_SETUP: [&str; 5] = [
    "ALTER SESSION SET NLS_NUMERIC_CHARACTERS = '.,'",
    "ALTER SESSION SET NLS_DATE_FORMAT = 'YYYY-MM-DD HH24:MI:SS'",
    "ALTER SESSION SET NLS_TIMESTAMP_FORMAT = 'YYYY-MM-DD HH24:MI:SS.FF9'",
    "ALTER SESSION SET NLS_TIMESTAMP_TZ_FORMAT = 'YYYY-MM-DD HH24:MI:SS.FF9 TZH:TZM'",
    "ALTER SESSION SET TIME_ZONE = '+00:00'",
];

/// DBMS_METADATA settings: no storage clauses or tablespaces (the new server has its own), no
/// foreign keys in table DDL (they are separate objects, created after the load), no `;`.
pub(crate) const METADATA_SETUP: &str = "BEGIN \
DBMS_METADATA.SET_TRANSFORM_PARAM(DBMS_METADATA.SESSION_TRANSFORM, 'SEGMENT_ATTRIBUTES', FALSE); \
DBMS_METADATA.SET_TRANSFORM_PARAM(DBMS_METADATA.SESSION_TRANSFORM, 'STORAGE', FALSE); \
DBMS_METADATA.SET_TRANSFORM_PARAM(DBMS_METADATA.SESSION_TRANSFORM, 'REF_CONSTRAINTS', FALSE); \
DBMS_METADATA.SET_TRANSFORM_PARAM(DBMS_METADATA.SESSION_TRANSFORM, 'SQLTERMINATOR', FALSE); \
END;";

/// The current SCN (needs `EXECUTE ON DBMS_FLASHBACK`).
pub(crate) const CURRENT_SCN: &str =
    "SELECT TO_CHAR(DBMS_FLASHBACK.GET_SYSTEM_CHANGE_NUMBER) FROM DUAL";

/// Tables of a schema (`:1` owner): permanent heap/IOT tables, not in the recycle bin, not
/// nested, not materialized-view containers, not external.
pub(crate) const LIST_TABLES: &str = "SELECT table_name FROM all_tables t \
WHERE t.owner = :1 AND t.temporary = 'N' AND t.nested = 'NO' AND t.secondary = 'N' \
AND t.dropped = 'NO' AND t.iot_name IS NULL \
AND NOT EXISTS (SELECT 1 FROM all_mviews m WHERE m.owner = t.owner AND m.mview_name = t.table_name) \
AND NOT EXISTS (SELECT 1 FROM all_external_tables x WHERE x.owner = t.owner AND x.table_name = t.table_name) \
ORDER BY table_name";

/// Stored columns of a table (`:1` owner, `:2` table), in order; virtual and hidden columns are
/// part of the DDL, not of the rows.
pub(crate) const LIST_COLUMNS: &str = "SELECT column_name, data_type, \
TO_CHAR(data_length), TO_CHAR(data_precision), TO_CHAR(data_scale), nullable, \
TO_CHAR(char_length) FROM all_tab_cols \
WHERE owner = :1 AND table_name = :2 AND hidden_column = 'NO' AND virtual_column = 'NO' \
ORDER BY column_id";

/// Primary-key columns (`:1` owner, `:2` table).
pub(crate) const PRIMARY_KEY: &str = "SELECT cc.column_name FROM all_constraints c \
JOIN all_cons_columns cc ON cc.owner = c.owner AND cc.constraint_name = c.constraint_name \
WHERE c.owner = :1 AND c.table_name = :2 AND c.constraint_type = 'P' ORDER BY cc.position";

/// DDL of one object (`:1` DBMS_METADATA type, `:2` name, `:3` owner).
pub(crate) const GET_DDL: &str = "SELECT DBMS_METADATA.GET_DDL(:1, :2, :3) FROM DUAL";

/// Indexes that do not back a primary or unique constraint (those come with the table DDL).
pub(crate) const LIST_INDEXES: &str = "SELECT i.index_name, i.table_name FROM all_indexes i \
WHERE i.owner = :1 AND i.table_owner = i.owner AND i.index_type <> 'LOB' AND i.generated = 'N' \
AND NOT EXISTS (SELECT 1 FROM all_constraints c WHERE c.owner = i.table_owner \
AND c.index_name = i.index_name AND c.constraint_type IN ('P', 'U')) \
ORDER BY i.table_name, i.index_name";

/// Foreign keys.
pub(crate) const LIST_FOREIGN_KEYS: &str = "SELECT constraint_name, table_name FROM all_constraints \
WHERE owner = :1 AND constraint_type = 'R' ORDER BY table_name, constraint_name";

/// Views, functions, procedures and packages, oldest first (a rough dependency order; views are
/// created FORCE by DBMS_METADATA anyway).
pub(crate) const LIST_CODE: &str = "SELECT object_type, object_name FROM all_objects \
WHERE owner = :1 AND object_type IN ('VIEW', 'FUNCTION', 'PROCEDURE', 'PACKAGE', 'PACKAGE BODY') \
ORDER BY CASE object_type WHEN 'VIEW' THEN 0 WHEN 'PACKAGE BODY' THEN 2 ELSE 1 END, created, object_name";

/// Triggers on tables of the schema.
pub(crate) const LIST_TRIGGERS: &str = "SELECT trigger_name, table_name FROM all_triggers \
WHERE owner = :1 AND base_object_type = 'TABLE' ORDER BY table_name, trigger_name";

/// Sequences (not the system ones behind identity columns: the table DDL recreates those).
pub(crate) const LIST_SEQUENCES: &str = "SELECT sequence_name, TO_CHAR(last_number), \
TO_CHAR(increment_by), TO_CHAR(min_value), TO_CHAR(max_value), TO_CHAR(cache_size), \
cycle_flag, order_flag FROM all_sequences \
WHERE sequence_owner = :1 AND sequence_name NOT LIKE 'ISEQ$$%' ORDER BY sequence_name";

/// Objects already in a schema (`:1`), recycle bin excluded.
pub(crate) const EXISTING_OBJECTS: &str = "SELECT object_type || ' ' || object_name FROM all_objects \
WHERE owner = :1 AND object_name NOT LIKE 'BIN$%' ORDER BY object_type, object_name";

/// Whether an object exists (`:1` owner, `:2` name, `:3` object type).
pub(crate) const OBJECT_EXISTS: &str = "SELECT COUNT(*) FROM all_objects \
WHERE owner = :1 AND object_name = :2 AND object_type = :3";

/// Double-quoted identifier.
///
/// # Errors
/// [`Error::UnsupportedObject`] for a name containing `"` (Oracle never has one).
pub(crate) fn ident(name: &str) -> Result<String> {
    if name.contains('"') || name.is_empty() {
        return Err(Error::UnsupportedObject {
            kind: "identifier".into(),
            name: name.into(),
            reason: "not a valid Oracle identifier".into(),
        });
    }
    Ok(format!("\"{name}\""))
}

/// `SELECT "A", "B" FROM "S"."T" [AS OF SCN n]`.
pub(crate) fn select_rows(schema: &str, table: &TableDef, scn: Option<&str>) -> Result<String> {
    let cols = table
        .columns
        .iter()
        .map(|c| ident(&c.name))
        .collect::<Result<Vec<_>>>()?;
    let mut sql = format!(
        "SELECT {} FROM {}.{}",
        cols.join(", "),
        ident(schema)?,
        ident(&table.name)?
    );
    if let Some(scn) = scn {
        if scn.is_empty() || !scn.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::format(0, format!("invalid SCN {scn:?}")));
        }
        sql.push_str(" AS OF SCN ");
        sql.push_str(scn);
    }
    Ok(sql)
}

/// `INSERT INTO "S"."T" ("A", "B") VALUES (:1, :2)`.
pub(crate) fn insert_rows(schema: &str, table: &TableDef) -> Result<String> {
    let cols = table
        .columns
        .iter()
        .map(|c| ident(&c.name))
        .collect::<Result<Vec<_>>>()?;
    let binds: Vec<String> = (1..=cols.len()).map(|i| format!(":{i}")).collect();
    Ok(format!(
        "INSERT INTO {}.{} ({}) VALUES ({})",
        ident(schema)?,
        ident(&table.name)?,
        cols.join(", "),
        binds.join(", ")
    ))
}

/// `CREATE SEQUENCE` that resumes at the recorded position.
pub(crate) fn create_sequence(schema: &str, s: &SequenceDef) -> Result<String> {
    let num = |v: &str| -> Result<String> {
        crate::logical::value::Decimal::parse(v)
            .map(|d| d.as_str().to_owned())
            .map_err(|t| Error::format(0, format!("sequence {}: invalid number {t:?}", s.name)))
    };
    let mut sql = format!(
        "CREATE SEQUENCE {}.{} START WITH {} INCREMENT BY {}",
        ident(schema)?,
        ident(&s.name)?,
        num(&s.value)?,
        num(&s.increment_by)?
    );
    if let Some(m) = &s.min_value {
        sql.push_str(&format!(" MINVALUE {}", num(m)?));
    }
    if let Some(m) = &s.max_value {
        sql.push_str(&format!(" MAXVALUE {}", num(m)?));
    }
    if s.cache > 1 {
        sql.push_str(&format!(" CACHE {}", s.cache));
    } else {
        sql.push_str(" NOCACHE");
    }
    sql.push_str(if s.cycle { " CYCLE" } else { " NOCYCLE" });
    sql.push_str(if s.order { " ORDER" } else { " NOORDER" });
    Ok(sql)
}

/// Replaces the `"FROM".` schema prefix DBMS_METADATA writes by `"TO".`.
pub(crate) fn remap_schema(ddl: &str, from: &str, to: &str) -> String {
    if from == to {
        return ddl.to_owned();
    }
    ddl.replace(&format!("\"{from}\"."), &format!("\"{to}\"."))
}

/// DBMS_METADATA returns a trigger as `CREATE ... END;` followed by `ALTER TRIGGER ... ENABLE`:
/// keep the first statement (a created trigger is enabled).
pub(crate) fn trigger_body(ddl: &str) -> String {
    let trimmed = ddl.trim();
    let body = match trimmed.find("\nALTER TRIGGER") {
        Some(at) => trimmed[..at].trim_end(),
        None => trimmed,
    };
    body.strip_suffix("\n/")
        .unwrap_or(body)
        .trim_end()
        .to_owned()
}

/// The DBMS_METADATA object type for an `ALL_OBJECTS.OBJECT_TYPE`.
pub(crate) fn metadata_type(object_type: &str) -> &str {
    match object_type {
        "PACKAGE" => "PACKAGE_SPEC",
        "PACKAGE BODY" => "PACKAGE_BODY",
        other => other,
    }
}

fn opt_u32(v: Option<&str>) -> Option<u32> {
    v.and_then(|s| s.parse().ok())
}

/// A column from its `ALL_TAB_COLS` row, with its logical kind.
///
/// # Errors
/// [`Error::UnsupportedType`] for types the logical export cannot carry without loss (`LONG`,
/// `LONG RAW`, `BFILE`, `ROWID`, `INTERVAL`, `XMLTYPE`, object types...).
#[allow(clippy::too_many_arguments)]
pub(crate) fn column_from_dictionary(
    table: &str,
    name: &str,
    data_type: &str,
    data_length: Option<&str>,
    precision: Option<&str>,
    scale: Option<&str>,
    nullable: Option<&str>,
    char_length: Option<&str>,
) -> Result<ColumnDef> {
    let precision = opt_u32(precision);
    let scale: Option<i32> = scale.and_then(|s| s.parse().ok());
    let (kind, length, source_type) = match data_type {
        "NUMBER" => (
            ValueKind::Number,
            None,
            match (precision, scale) {
                (Some(p), Some(s)) => format!("NUMBER({p},{s})"),
                (None, Some(0)) => "NUMBER(*,0)".to_owned(),
                _ => "NUMBER".to_owned(),
            },
        ),
        "FLOAT" => (
            ValueKind::Number,
            None,
            precision.map_or("FLOAT".to_owned(), |p| format!("FLOAT({p})")),
        ),
        "BINARY_FLOAT" | "BINARY_DOUBLE" => (ValueKind::Float, None, data_type.to_owned()),
        "VARCHAR2" | "NVARCHAR2" | "VARCHAR" | "CHAR" | "NCHAR" => {
            let len = opt_u32(char_length);
            (
                ValueKind::Text,
                len,
                format!("{data_type}({})", len.unwrap_or(0)),
            )
        }
        "CLOB" | "NCLOB" => (ValueKind::Clob, None, data_type.to_owned()),
        "RAW" => {
            let len = opt_u32(data_length);
            (ValueKind::Raw, len, format!("RAW({})", len.unwrap_or(0)))
        }
        "BLOB" => (ValueKind::Blob, None, data_type.to_owned()),
        "DATE" => (ValueKind::Date, None, data_type.to_owned()),
        t if t.starts_with("TIMESTAMP") && t.ends_with("WITH TIME ZONE") => {
            (ValueKind::TimestampTz, None, t.to_owned())
        }
        // Read in the session time zone, set to UTC at connection: kept as UTC with its offset.
        t if t.starts_with("TIMESTAMP") && t.ends_with("WITH LOCAL TIME ZONE") => {
            (ValueKind::TimestampTz, None, t.to_owned())
        }
        t if t.starts_with("TIMESTAMP") => (ValueKind::Timestamp, None, t.to_owned()),
        other => {
            return Err(Error::UnsupportedType {
                table: table.to_owned(),
                column: name.to_owned(),
                source_type: other.to_owned(),
            });
        }
    };
    Ok(ColumnDef {
        name: name.to_owned(),
        kind,
        source_type,
        nullable: nullable != Some("N"),
        length,
        precision,
        scale,
    })
}

/// How a column's values are bound in an array insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BindType {
    /// Decimal text, converted by the server (NLS_NUMERIC_CHARACTERS is `.,`).
    Number,
    /// `BINARY_DOUBLE`.
    Float,
    /// `VARCHAR2` of at most this many characters.
    Varchar(u32),
    /// `NVARCHAR2` of at most this many characters.
    NVarchar(u32),
    /// `RAW` of at most this many bytes.
    Raw(u32),
    /// `CLOB`.
    Clob,
    /// `NCLOB`.
    NClob,
    /// `BLOB`.
    Blob,
    /// `DATE`.
    Date,
    /// `TIMESTAMP(9)`.
    Timestamp,
    /// `TIMESTAMP(9) WITH TIME ZONE`.
    TimestampTz,
}

/// The bind type of a column of an Oracle dump.
///
/// # Errors
/// [`Error::IncompatibleDialect`] for a column kind Oracle does not have (SQLite's dynamic
/// columns, 64-bit integers without a declared type).
pub(crate) fn bind_type(table: &str, c: &ColumnDef) -> Result<BindType> {
    let national = c.source_type.starts_with('N');
    Ok(match c.kind {
        ValueKind::Number => BindType::Number,
        ValueKind::Float => BindType::Float,
        ValueKind::Text if national => BindType::NVarchar(c.length.unwrap_or(2000).max(1)),
        ValueKind::Text => BindType::Varchar(c.length.unwrap_or(4000).max(1)),
        ValueKind::Clob if national => BindType::NClob,
        ValueKind::Clob => BindType::Clob,
        ValueKind::Raw => BindType::Raw(c.length.unwrap_or(2000).max(1)),
        ValueKind::Blob => BindType::Blob,
        ValueKind::Date => BindType::Date,
        ValueKind::Timestamp => BindType::Timestamp,
        ValueKind::TimestampTz => BindType::TimestampTz,
        other => {
            return Err(Error::IncompatibleDialect {
                source_dialect: "sqlite".into(),
                target: format!("Oracle table {table}"),
                reason: format!(
                    "column {} has kind {other:?}, which Oracle has no type for",
                    c.name
                ),
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(t: &str, p: Option<&str>, s: Option<&str>, len: Option<&str>) -> Result<ColumnDef> {
        column_from_dictionary("T", "C", t, len, p, s, Some("Y"), len)
    }

    #[test]
    fn dictionary_types_map_to_lossless_kinds() {
        let cases = [
            (
                "NUMBER",
                Some("10"),
                Some("0"),
                None,
                ValueKind::Number,
                "NUMBER(10,0)",
            ),
            ("NUMBER", None, None, None, ValueKind::Number, "NUMBER"),
            (
                "NUMBER",
                None,
                Some("0"),
                None,
                ValueKind::Number,
                "NUMBER(*,0)",
            ),
            (
                "FLOAT",
                Some("126"),
                None,
                None,
                ValueKind::Number,
                "FLOAT(126)",
            ),
            (
                "BINARY_DOUBLE",
                None,
                None,
                None,
                ValueKind::Float,
                "BINARY_DOUBLE",
            ),
            (
                "VARCHAR2",
                None,
                None,
                Some("100"),
                ValueKind::Text,
                "VARCHAR2(100)",
            ),
            (
                "NVARCHAR2",
                None,
                None,
                Some("50"),
                ValueKind::Text,
                "NVARCHAR2(50)",
            ),
            ("CHAR", None, None, Some("3"), ValueKind::Text, "CHAR(3)"),
            ("CLOB", None, None, None, ValueKind::Clob, "CLOB"),
            ("NCLOB", None, None, None, ValueKind::Clob, "NCLOB"),
            ("RAW", None, None, Some("16"), ValueKind::Raw, "RAW(16)"),
            ("BLOB", None, None, None, ValueKind::Blob, "BLOB"),
            ("DATE", None, None, None, ValueKind::Date, "DATE"),
            (
                "TIMESTAMP(6)",
                None,
                None,
                None,
                ValueKind::Timestamp,
                "TIMESTAMP(6)",
            ),
            (
                "TIMESTAMP(6) WITH TIME ZONE",
                None,
                None,
                None,
                ValueKind::TimestampTz,
                "TIMESTAMP(6) WITH TIME ZONE",
            ),
            (
                "TIMESTAMP(3) WITH LOCAL TIME ZONE",
                None,
                None,
                None,
                ValueKind::TimestampTz,
                "TIMESTAMP(3) WITH LOCAL TIME ZONE",
            ),
        ];
        for (t, p, s, len, kind, source) in cases {
            let c = col(t, p, s, len).unwrap();
            assert_eq!((c.kind, c.source_type.as_str()), (kind, source), "{t}");
        }
        let n = col("NUMBER", Some("12"), Some("3"), None).unwrap();
        assert_eq!((n.precision, n.scale), (Some(12), Some(3)));
        let nn =
            column_from_dictionary("T", "C", "DATE", None, None, None, Some("N"), None).unwrap();
        assert!(!nn.nullable);
    }

    #[test]
    fn lossy_types_are_refused() {
        for t in [
            "LONG",
            "LONG RAW",
            "BFILE",
            "ROWID",
            "UROWID",
            "XMLTYPE",
            "INTERVAL DAY(2) TO SECOND(6)",
            "SDO_GEOMETRY",
        ] {
            let e = col(t, None, None, None).unwrap_err();
            assert!(
                matches!(&e, Error::UnsupportedType { source_type, .. } if source_type == t),
                "{e}"
            );
        }
    }

    #[test]
    fn bind_types_follow_the_columns() {
        let c = |t, kind, len| ColumnDef {
            name: "C".into(),
            kind,
            source_type: String::from(t),
            nullable: true,
            length: len,
            precision: None,
            scale: None,
        };
        assert_eq!(
            bind_type("T", &c("NVARCHAR2(50)", ValueKind::Text, Some(50))).unwrap(),
            BindType::NVarchar(50)
        );
        assert_eq!(
            bind_type("T", &c("VARCHAR2(100)", ValueKind::Text, Some(100))).unwrap(),
            BindType::Varchar(100)
        );
        assert_eq!(
            bind_type("T", &c("NCLOB", ValueKind::Clob, None)).unwrap(),
            BindType::NClob
        );
        assert_eq!(
            bind_type("T", &c("RAW(16)", ValueKind::Raw, Some(16))).unwrap(),
            BindType::Raw(16)
        );
        assert_eq!(
            bind_type(
                "T",
                &c("TIMESTAMP(6) WITH TIME ZONE", ValueKind::TimestampTz, None)
            )
            .unwrap(),
            BindType::TimestampTz
        );
        assert!(bind_type("T", &c("", ValueKind::Any, None)).is_err());
    }

    #[test]
    fn sql_text_is_quoted_and_validated() {
        let t = TableDef {
            name: "CYCLES".into(),
            ddl: String::new(),
            columns: vec![col("NUMBER", None, None, None).unwrap()],
            primary_key: vec![],
        };
        assert_eq!(
            select_rows("JFIV", &t, Some("123")).unwrap(),
            "SELECT \"C\" FROM \"JFIV\".\"CYCLES\" AS OF SCN 123"
        );
        assert!(select_rows("JFIV", &t, Some("1; DROP TABLE X")).is_err());
        assert_eq!(
            insert_rows("JFIV2", &t).unwrap(),
            "INSERT INTO \"JFIV2\".\"CYCLES\" (\"C\") VALUES (:1)"
        );
        assert!(ident("A\"B").is_err());
        let s = SequenceDef {
            name: "CYCLES_SEQ".into(),
            value: "1021".into(),
            increment_by: "1".into(),
            min_value: Some("1".into()),
            max_value: Some("9999999999999999999999999999".into()),
            cache: 20,
            cycle: false,
            order: false,
        };
        assert_eq!(
            create_sequence("JFIV", &s).unwrap(),
            "CREATE SEQUENCE \"JFIV\".\"CYCLES_SEQ\" START WITH 1021 INCREMENT BY 1 MINVALUE 1 \
             MAXVALUE 9999999999999999999999999999 CACHE 20 NOCYCLE NOORDER"
        );
        let bad = SequenceDef {
            value: "1 CYCLE".into(),
            ..s
        };
        assert!(create_sequence("JFIV", &bad).is_err());
        assert_eq!(
            remap_schema(
                "ALTER TABLE \"JFIV\".\"A\" ADD CONSTRAINT \"FK\" REFERENCES \"JFIV\".\"B\"",
                "JFIV",
                "JFIV_NEW"
            ),
            "ALTER TABLE \"JFIV_NEW\".\"A\" ADD CONSTRAINT \"FK\" REFERENCES \"JFIV_NEW\".\"B\""
        );
        assert_eq!(
            trigger_body(
                "\n  CREATE OR REPLACE TRIGGER \"JFIV\".\"T\" BEFORE INSERT ON X BEGIN NULL; END;\n/\nALTER TRIGGER \"JFIV\".\"T\" ENABLE"
            ),
            "CREATE OR REPLACE TRIGGER \"JFIV\".\"T\" BEFORE INSERT ON X BEGIN NULL; END;"
        );
    }
}

/// Decimal text in the form the driver's NUMBER binding accepts (`-?d+(.d+)?(E[+-]?d+)?`):
/// same value, same digits.
pub(crate) fn oracle_number_text(d: &crate::logical::value::Decimal) -> String {
    let s = d.as_str();
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'-') => ("-", &s[1..]),
        Some(b'+') => ("", &s[1..]),
        _ => ("", s),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, ""),
    };
    let (int, frac) = match mantissa.find('.') {
        Some(at) => (&mantissa[..at], &mantissa[at + 1..]),
        None => (mantissa, ""),
    };
    let int = if int.is_empty() { "0" } else { int };
    if frac.is_empty() {
        format!("{sign}{int}{exponent}")
    } else {
        format!("{sign}{int}.{frac}{exponent}")
    }
}

#[cfg(test)]
mod number_tests {
    use super::*;
    use crate::logical::value::Decimal;

    #[test]
    fn numbers_are_normalised_for_binding_without_changing_digits() {
        for (input, expected) in [
            ("+3", "3"),
            (".5", "0.5"),
            ("-.5", "-0.5"),
            ("7.", "7"),
            (
                "-12345678901234567890.000000000000000001",
                "-12345678901234567890.000000000000000001",
            ),
            ("1E+125", "1E+125"),
            ("-.25e-3", "-0.25e-3"),
        ] {
            assert_eq!(
                oracle_number_text(&Decimal::parse(input).unwrap()),
                expected
            );
        }
    }
}
