//! JSON Schemas of the values the use cases validate, so that the document states the rules the
//! server enforces, no looser and no stricter: a client generated from it sends what the server
//! takes, and an API fuzzer that breaks a rule sees the server refuse it.
//!
//! Free text is trimmed by medex-core before it is checked (Rust's `str::trim`, Unicode
//! White_Space), then must be non-empty, at most N characters and free of control characters
//! other than tab and line feed. Leading and trailing white space therefore does not count, which
//! `maxLength` cannot say; the patterns below state the rule exactly, length included.
//! The wire types use these through `#[schema(schema_with = ...)]`.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    AllOfBuilder, AnyOfBuilder, KnownFormat, Object, ObjectBuilder, Schema, SchemaFormat,
    SchemaType, Type,
};

/// Every character `str::trim` removes (Unicode White_Space).
const SPACE: &str =
    r"[\t\n\u000B\u000C\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]";
/// A character that may start or end trimmed text: neither white space nor a control character.
const EDGE: &str =
    r"[^\u0000-\u001F\u007F-\u009F \u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]";
/// A character inside text: anything but a control character, tab and line feed excepted.
const INNER: &str = r"[^\u0000-\u0008\u000B-\u001F\u007F-\u009F]";

/// Whether text may be blank (then it means "none").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Blank {
    /// Blank text is refused (422).
    Refused,
    /// Blank text, like `null`, means none.
    MeansNone,
}

/// The pattern of text that trims to 1..=`max` characters without control characters, optionally
/// also blank.
fn text_pattern(max: usize, blank: Blank) -> String {
    let inner = max.saturating_sub(2);
    let text = format!("{EDGE}(?:{INNER}{{0,{inner}}}{EDGE})?");
    match blank {
        Blank::Refused => format!("^{SPACE}*{text}{SPACE}*$"),
        Blank::MeansNone => format!("^{SPACE}*(?:{text})?{SPACE}*$"),
    }
}

fn string_or_null(nullable: bool) -> SchemaType {
    if nullable {
        SchemaType::from_iter([Type::String, Type::Null])
    } else {
        SchemaType::Type(Type::String)
    }
}

fn text(max: usize, nullable: bool, blank: Blank) -> Object {
    let rule = match blank {
        Blank::Refused => format!("1 to {max} characters"),
        Blank::MeansNone => format!("Blank (none), or 1 to {max} characters"),
    };
    ObjectBuilder::new()
        .schema_type(string_or_null(nullable))
        .pattern(Some(text_pattern(max, blank)))
        .description(Some(format!(
            "{rule} once leading and trailing white space is trimmed; no control characters \
             other than tab and line feed."
        )))
        .build()
}

macro_rules! text_schemas {
    ($($(#[$doc:meta])* $name:ident = $max:literal, $nullable:literal, $blank:ident;)*) => {$(
        $(#[$doc])*
        pub(crate) fn $name() -> Object {
            text($max, $nullable, Blank::$blank)
        }
    )*};
}

text_schemas! {
    /// Required text of at most 40 characters (phone numbers).
    text_40 = 40, false, Refused;
    /// Required text of at most 100 characters (labels).
    text_100 = 100, false, Refused;
    /// Required text of at most 200 characters (names).
    text_200 = 200, false, Refused;
    /// Required text of at most 500 characters (addresses).
    text_500 = 500, false, Refused;
    /// A change to text of at most 200 characters: `null` keeps the old value.
    text_200_or_null = 200, true, Refused;
    /// A change to text of at most 500 characters: `null` keeps the old value.
    text_500_or_null = 500, true, Refused;
    /// Optional text of at most 40 characters; blank or `null` is none.
    optional_text_40 = 40, true, MeansNone;
    /// Optional text of at most 60 characters; blank or `null` is none.
    optional_text_60 = 60, true, MeansNone;
    /// Optional text of at most 200 characters; blank or `null` is none.
    optional_text_200 = 200, true, MeansNone;
    /// Optional text of at most 500 characters; blank or `null` is none.
    optional_text_500 = 500, true, MeansNone;
    /// Optional text of at most 2000 characters; blank or `null` is none.
    optional_text_2000 = 2000, true, MeansNone;
}

/// An e-mail address as `Email::parse` takes it: trimmed, then `local@domain` of visible ASCII
/// characters only (no white space, no invisible or look-alike letters), one `@`, a domain
/// holding a dot that neither starts nor ends it, and at most 254 bytes (a bound the pattern
/// leaves to the description).
pub(crate) fn email() -> Object {
    // Visible ASCII but `@`.
    let atom = r"[!-?A-~]";
    // The same, and not a dot.
    let edge = r"[!-\-/-?A-~]";
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!(
            r"^{SPACE}*{atom}+@{edge}{atom}*\.{atom}*{edge}{SPACE}*$"
        )))
        .description(Some(
            "An e-mail address of visible ASCII characters (internationalised domains in \
             punycode), at most 254 bytes once trimmed; compared in lower case.",
        ))
        .build()
}

/// An outgoing webhook's URL as registration always takes it: `https://`, a host name of two to
/// four labels (a literal address is checked by the address rule, and a private one refused) and
/// an optional path. The server takes more than this pattern (ports, queries); the pattern is
/// what it never refuses.
pub(crate) fn webhook_url() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(
            r"^https://[a-z][a-z0-9-]{0,30}(\.[a-z][a-z0-9-]{0,30}){1,3}(/[A-Za-z0-9._~/-]{0,200})?$",
        ))
        .max_length(Some(2000))
        .description(Some(
            "`https://` URL of a public host (plain `http://` and private or loopback addresses \
             only where the server allows them); at most 2000 characters.",
        ))
        .examples(["https://shop.example.com/medex"])
        .build()
}

/// The events of a webhook: `["*"]` alone, or one to twenty event type names.
pub(crate) fn webhook_events() -> Schema {
    use medex_core::integrations::WebhookEvent;
    use utoipa::openapi::schema::{ArrayBuilder, OneOfBuilder};
    let every: Vec<&str> = WebhookEvent::ALL.iter().map(|e| e.as_str()).collect();
    let listed = every
        .iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let names = |values: Vec<&str>| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(values))
            .build()
    };
    OneOfBuilder::new()
        .item(
            ArrayBuilder::new()
                .items(names(vec!["*"]))
                .min_items(Some(1))
                .max_items(Some(1)),
        )
        .item(
            ArrayBuilder::new()
                .items(names(every))
                .min_items(Some(1))
                .max_items(Some(20)),
        )
        .description(Some(format!(
            "`[\"*\"]` for every event type, or some of {listed}."
        )))
        .build()
        .into()
}

/// A webhook secret: `null` or blank removes it; otherwise 16 to 256 characters once trimmed.
pub(crate) fn webhook_secret() -> Object {
    ObjectBuilder::new()
        .schema_type(string_or_null(true))
        .pattern(Some(format!(
            r"^{SPACE}*(?:[^{space}][\s\S]{{14,254}}[^{space}])?{SPACE}*$",
            space = &SPACE[1..SPACE.len() - 1]
        )))
        .write_only(Some(true))
        .description(Some(
            "Write-only. `null` or blank removes the secret; otherwise 16 to 256 characters (bytes, \
             for non-ASCII text) once trimmed.",
        ))
        .build()
}

/// A UTC offset in a query string, as `parse_offset` reads it: `Z` or `UTC` (any case), or
/// `±HH:MM` / `±HHMM` up to 14 hours; a leading space stands for a `+` that the query string
/// decoded to a space.
pub(crate) fn utc_offset() -> Object {
    let offset = "(?:0[0-9]|1[0-4]):?[0-5][0-9]";
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!(
            "^(?:{SPACE}*(?:[zZ]|[uU][tT][cC]|[+-]{offset})| {SPACE}*{offset}){SPACE}*$"
        )))
        .description(Some(
            "UTC offset: `Z`, `UTC`, `+02:00`, `-0530` (default `Z`).",
        ))
        .examples(["+02:00"])
        .build()
}

fn date_or_time_of(nullable: bool) -> RefOr<Schema> {
    let format = |f: KnownFormat| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(f)))
    };
    let mut any = AnyOfBuilder::new()
        .item(format(KnownFormat::Date))
        .item(format(KnownFormat::DateTime));
    if nullable {
        any = any.item(null());
    }
    any.description(Some("A date (`YYYY-MM-DD`) or an RFC 3339 time."))
        .into()
}

/// A date (`YYYY-MM-DD`) or an RFC 3339 time, in a query string.
pub(crate) fn date_or_time() -> RefOr<Schema> {
    date_or_time_of(false)
}

/// A date (`YYYY-MM-DD`) or an RFC 3339 time, or `null` (the default), in a body.
pub(crate) fn date_or_time_or_null() -> RefOr<Schema> {
    date_or_time_of(true)
}

/// An RFC 3339 time, or `null`. Spelled as `anyOf` rather than `type: [string, null]`, which some
/// generators fill with an empty string as if the format did not apply to it.
pub(crate) fn date_time_or_null() -> RefOr<Schema> {
    AnyOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
        )
        .item(null())
        .into()
}

/// `null`, the only value of a field that must be absent in one shape of a body.
pub(crate) fn null() -> Object {
    ObjectBuilder::new().schema_type(Type::Null).build()
}

/// `schema` restricted further by `rule` (both must hold).
pub(crate) fn all_of(schema: RefOr<Schema>, rule: impl Into<RefOr<Schema>>) -> Schema {
    AllOfBuilder::new().item(schema).item(rule).build().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_patterns_count_only_the_trimmed_text() {
        let required = regex::Regex::new(&text_pattern(5, Blank::Refused)).unwrap();
        let optional = regex::Regex::new(&text_pattern(5, Blank::MeansNone)).unwrap();
        for (text, ok) in [
            ("a", true),
            ("abcde", true),
            ("abcdef", false),
            ("  abcde \n", true),
            ("a\tb\nc", true),
            ("a\rb", false),
            ("\u{85}a\u{3000}", true),
            ("a\u{0}", false),
            ("", false),
            ("  ", false),
        ] {
            assert_eq!(required.is_match(text), ok, "{text:?}");
        }
        assert!(optional.is_match(""));
        assert!(optional.is_match(" \t "));
        assert!(!optional.is_match("abcdef"));
    }
}
