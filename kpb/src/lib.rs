//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`) turned into the
//! JSON object a JSON body would have given.
//!
//! kubectl sends built-in kinds as protobuf for its typed commands (`create configmap`, `run`,
//! `expose`, `create token`, ...). Sextant works on JSON (`serde_json::Value` with Kubernetes'
//! JSON field names), so rather than a second object model we transcode: the body is
//! `k8s\0` + a `runtime.Unknown` envelope whose `raw` bytes are the typed object's protobuf;
//! the object is walked field by field using a schema table generated at build time from the
//! `k8s-pb` sources (see `build.rs`), and the few types whose JSON form is not a plain object
//! (IntOrString, Quantity, Time, MicroTime, Duration, RawExtension, FieldsV1, ExtraValue, JSON)
//! are converted the way their Go `MarshalJSON` does.
//!
//! Faithfulness note: Go's protobuf marshalling always writes non-pointer fields, so a decoded
//! body can hold zero values (`"generateName": ""`, `"hostPort": 0`) that Go's JSON would omit.
//! Empty strings and empty byte strings are dropped, because for Kubernetes' Go types an empty
//! string is the same as no value; numbers and booleans are kept, because pointer fields such as
//! `replicas: 0` or `automountServiceAccountToken: false` mean something.

use base64::Engine as _;
use prost::Message as _;
use serde_json::{Map, Value};

mod schema {
    /// A protobuf scalar or message type. All of protobuf's scalars are here so a new k8s-pb
    /// release using one needs no change; Kubernetes itself uses only some of them today.
    #[allow(
        dead_code,
        reason = "the generated table uses only the scalars Kubernetes uses"
    )]
    #[derive(Clone, Copy, Debug)]
    pub(crate) enum Ty {
        String,
        Bytes,
        Bool,
        Int32,
        Int64,
        Uint32,
        Uint64,
        Sint32,
        Sint64,
        Fixed32,
        Fixed64,
        Sfixed32,
        Sfixed64,
        Float,
        Double,
        /// The full name of the message, `k8s.io.<module path>.<Name>`.
        Message(&'static str),
    }

    /// How often a field occurs.
    #[derive(Clone, Copy, Debug)]
    pub(crate) enum Label {
        Single,
        Repeated,
        /// A map (key type, value type); `FieldDef::ty` is unused.
        Map(Ty, Ty),
    }

    #[derive(Debug)]
    pub(crate) struct FieldDef {
        pub tag: u32,
        /// prost's (snake_case) field name; used for the special types and in errors.
        pub rust: &'static str,
        /// The Kubernetes JSON property name.
        pub json: &'static str,
        pub ty: Ty,
        pub label: Label,
    }

    #[derive(Debug)]
    pub(crate) struct MessageDef {
        pub name: &'static str,
        /// Sorted by tag.
        pub fields: &'static [FieldDef],
    }

    include!(concat!(env!("OUT_DIR"), "/schema.rs"));
}

use schema::{Label, MessageDef, Ty};

/// The four bytes every Kubernetes protobuf body starts with.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// The media type kubectl uses for protobuf bodies.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// Nesting limit for messages (and embedded objects): deeper input is refused instead of
/// exhausting the stack.
const MAX_DEPTH: usize = 64;

/// Why a protobuf body could not be turned into JSON.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    #[error("the body is not Kubernetes protobuf: it does not start with the bytes \"k8s\\x00\"")]
    NoMagic,
    #[error("the protobuf envelope (runtime.Unknown) cannot be decoded: {0}")]
    Envelope(#[from] prost::DecodeError),
    #[error("the protobuf envelope has no {0}")]
    MissingTypeMeta(&'static str),
    #[error("protobuf bodies with content encoding {0:?} are not supported")]
    ContentEncoding(String),
    #[error("no protobuf schema is known for apiVersion {api_version:?}, kind {kind:?}")]
    UnknownKind { api_version: String, kind: String },
    #[error("the protobuf schema references an unknown message type {0}")]
    UnknownMessage(String),
    #[error("malformed protobuf in {message}.{field}: {reason}")]
    Malformed {
        message: String,
        field: String,
        reason: String,
    },
    #[error("the protobuf object is nested more than {MAX_DEPTH} levels deep (at {0})")]
    TooDeep(String),
}

fn malformed(message: &str, field: &str, reason: impl Into<String>) -> ProtoError {
    ProtoError::Malformed {
        message: message.to_owned(),
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// Decodes a `k8s\0`-prefixed protobuf body into the object's Kubernetes JSON, with
/// `apiVersion` and `kind` taken from the envelope's type meta.
pub fn decode_k8s_protobuf(bytes: &[u8]) -> Result<Value, ProtoError> {
    decode_at_depth(bytes, 0)
}

fn decode_at_depth(bytes: &[u8], depth: usize) -> Result<Value, ProtoError> {
    let body = bytes
        .strip_prefix(MAGIC.as_slice())
        .ok_or(ProtoError::NoMagic)?;
    let unknown = k8s_pb::apimachinery::pkg::runtime::Unknown::decode(body)?;
    if let Some(enc) = unknown
        .content_encoding
        .as_deref()
        .filter(|e| !e.is_empty())
    {
        return Err(ProtoError::ContentEncoding(enc.to_owned()));
    }
    let meta = unknown.type_meta.unwrap_or_default();
    let api_version = meta
        .api_version
        .filter(|s| !s.is_empty())
        .ok_or(ProtoError::MissingTypeMeta("apiVersion"))?;
    let kind = meta
        .kind
        .filter(|s| !s.is_empty())
        .ok_or(ProtoError::MissingTypeMeta("kind"))?;
    let def = message_for_kind(&api_version, &kind).ok_or_else(|| ProtoError::UnknownKind {
        api_version: api_version.clone(),
        kind: kind.clone(),
    })?;
    let raw = unknown.raw.unwrap_or_default();
    let mut object = match decode_message(def, &raw, depth)? {
        Value::Object(m) => m,
        // Only the special scalar-like types decode to non-objects; none of them is a kind.
        other => return Ok(other),
    };
    // apiVersion and kind first, as Kubernetes writes them.
    let mut out = Map::new();
    out.insert("apiVersion".into(), Value::String(api_version));
    out.insert("kind".into(), Value::String(kind));
    out.append(&mut object);
    Ok(Value::Object(out))
}

/// The message for (apiVersion, kind): first from k8s-pb's `Resource` impls, then, for kinds
/// that are not resources (`DeleteOptions`, `Eviction` bodies, ...), the unique message named
/// `kind` in a module whose path ends in the version and contains the group's first label.
fn message_for_kind(api_version: &str, kind: &str) -> Option<&'static MessageDef> {
    if let Some((_, _, name)) = schema::RESOURCES
        .iter()
        .find(|(a, k, _)| *a == api_version && *k == kind)
    {
        return find_message(name);
    }
    let (group, version) = api_version.split_once('/').unwrap_or(("core", api_version));
    let group_label = group.split('.').next().unwrap_or(group);
    let suffix = format!(".{version}.{kind}");
    let mut candidates = schema::MESSAGES
        .iter()
        .filter(|m| m.name.ends_with(&suffix) && m.name.split('.').any(|part| part == group_label));
    let first = candidates.next()?;
    candidates.next().is_none().then_some(first)
}

fn find_message(name: &str) -> Option<&'static MessageDef> {
    schema::MESSAGES
        .binary_search_by(|m| m.name.cmp(name))
        .ok()
        .map(|i| &schema::MESSAGES[i])
}

// ----- the wire format -----

const VARINT: u8 = 0;
const I64: u8 = 1;
const LEN: u8 = 2;
const I32: u8 = 5;

/// A value as it came off the wire, before the schema says what it means.
enum Wire<'a> {
    Varint(u64),
    I64(u64),
    Len(&'a [u8]),
    I32(u32),
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, &'static str> {
        let mut value = 0u64;
        for i in 0..10 {
            let (&b, rest) = self.buf.split_first().ok_or("truncated varint")?;
            self.buf = rest;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint longer than 10 bytes")
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.buf.len() < n {
            return Err("truncated value");
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// The next (tag, value), or None at the end of the message. Errors carry the field
    /// number when it was read (0 when the key itself was bad), so messages can name the field.
    fn field(&mut self) -> Result<Option<(u32, Wire<'a>)>, (u32, &'static str)> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint().map_err(|e| (0, e))?;
        let tag = u32::try_from(key >> 3).map_err(|_| (0, "field number out of range"))?;
        self.value(key)
            .map(|w| Some((tag, w)))
            .map_err(|e| (tag, e))
    }

    fn value(&mut self, key: u64) -> Result<Wire<'a>, &'static str> {
        Ok(match (key & 7) as u8 {
            VARINT => Wire::Varint(self.varint()?),
            I64 => Wire::I64(u64::from_le_bytes(
                self.take(8)?.try_into().map_err(|_| "truncated value")?,
            )),
            LEN => {
                let n = usize::try_from(self.varint()?).map_err(|_| "length out of range")?;
                Wire::Len(self.take(n)?)
            }
            I32 => Wire::I32(u32::from_le_bytes(
                self.take(4)?.try_into().map_err(|_| "truncated value")?,
            )),
            _ => return Err("unsupported wire type (groups are not used by Kubernetes)"),
        })
    }
}

/// Decodes one value of type `ty`. `depth` bounds message recursion.
fn decode_value(
    ty: Ty,
    wire: Wire<'_>,
    msg: &str,
    field: &str,
    depth: usize,
) -> Result<Value, ProtoError> {
    let bad = |reason: &str| malformed(msg, field, reason);
    let num = |n: serde_json::Number| Ok(Value::Number(n));
    match (ty, wire) {
        (Ty::Bool, Wire::Varint(v)) => Ok(Value::Bool(v != 0)),
        // int32 is sign-extended to 64 bits on the wire; truncation recovers it.
        (Ty::Int32, Wire::Varint(v)) => num((v as i32).into()),
        (Ty::Int64, Wire::Varint(v)) => num((v as i64).into()),
        (Ty::Uint32, Wire::Varint(v)) => num((v as u32).into()),
        (Ty::Uint64, Wire::Varint(v)) => num(v.into()),
        (Ty::Sint32, Wire::Varint(v)) => num((((v >> 1) as i64) ^ -((v & 1) as i64)).into()),
        (Ty::Sint64, Wire::Varint(v)) => num((((v >> 1) as i64) ^ -((v & 1) as i64)).into()),
        (Ty::Fixed64, Wire::I64(v)) => num(v.into()),
        (Ty::Sfixed64, Wire::I64(v)) => num((v as i64).into()),
        (Ty::Double, Wire::I64(v)) => {
            float(f64::from_bits(v)).ok_or_else(|| bad("not a finite number"))
        }
        (Ty::Fixed32, Wire::I32(v)) => num(v.into()),
        (Ty::Sfixed32, Wire::I32(v)) => num((v as i32).into()),
        (Ty::Float, Wire::I32(v)) => {
            float(f64::from(f32::from_bits(v))).ok_or_else(|| bad("not a finite number"))
        }
        (Ty::String, Wire::Len(b)) => std::str::from_utf8(b)
            .map(|s| Value::String(s.to_owned()))
            .map_err(|_| bad("string is not UTF-8")),
        // Go's JSON encodes []byte as standard base64 (Secret data, ConfigMap binaryData).
        (Ty::Bytes, Wire::Len(b)) => Ok(Value::String(
            base64::engine::general_purpose::STANDARD.encode(b),
        )),
        (Ty::Message(name), Wire::Len(b)) => {
            let def =
                find_message(name).ok_or_else(|| ProtoError::UnknownMessage(name.to_owned()))?;
            decode_message(def, b, depth + 1)
        }
        (ty, _) => Err(bad(&format!("wrong wire type for {ty:?}"))),
    }
}

fn float(f: f64) -> Option<Value> {
    serde_json::Number::from_f64(f).map(Value::Number)
}

/// Whether `ty` may arrive packed (several values in one length-delimited field).
fn packable(ty: Ty) -> bool {
    !matches!(ty, Ty::String | Ty::Bytes | Ty::Message(_))
}

/// Decodes the fields of a message into a JSON object keyed by JSON name (or by prost's
/// field name when `by_rust_name`, which the special types use).
fn decode_fields(
    def: &MessageDef,
    buf: &[u8],
    depth: usize,
    by_rust_name: bool,
) -> Result<Map<String, Value>, ProtoError> {
    if depth > MAX_DEPTH {
        return Err(ProtoError::TooDeep(def.name.to_owned()));
    }
    let mut out = Map::new();
    let mut r = Reader { buf };
    loop {
        let next = r.field().map_err(|(tag, e)| {
            let field = def
                .fields
                .iter()
                .find(|f| f.tag == tag)
                .map_or_else(|| format!("#{tag}"), |f| f.rust.to_owned());
            malformed(def.name, &field, e)
        })?;
        let Some((tag, wire)) = next else { break };
        // Unknown fields are skipped, as protobuf readers do (newer clients, older schema).
        let Some(f) = def
            .fields
            .binary_search_by_key(&tag, |f| f.tag)
            .ok()
            .map(|i| &def.fields[i])
        else {
            continue;
        };
        let key = if by_rust_name { f.rust } else { f.json };
        match f.label {
            Label::Single => {
                let v = decode_value(f.ty, wire, def.name, f.rust, depth)?;
                out.insert(key.to_owned(), v);
            }
            Label::Repeated => {
                let items = out.entry(key).or_insert_with(|| Value::Array(Vec::new()));
                let Value::Array(items) = items else { continue };
                match wire {
                    Wire::Len(b) if packable(f.ty) => {
                        let mut pr = Reader { buf: b };
                        while !pr.buf.is_empty() {
                            let w = match f.ty {
                                Ty::Double | Ty::Fixed64 | Ty::Sfixed64 => pr.take(8).map(|b| {
                                    Wire::I64(u64::from_le_bytes(b.try_into().unwrap_or_default()))
                                }),
                                Ty::Float | Ty::Fixed32 | Ty::Sfixed32 => pr.take(4).map(|b| {
                                    Wire::I32(u32::from_le_bytes(b.try_into().unwrap_or_default()))
                                }),
                                _ => pr.varint().map(Wire::Varint),
                            }
                            .map_err(|e| malformed(def.name, f.rust, e))?;
                            items.push(decode_value(f.ty, w, def.name, f.rust, depth)?);
                        }
                    }
                    w => items.push(decode_value(f.ty, w, def.name, f.rust, depth)?),
                }
            }
            Label::Map(kt, vt) => {
                let Wire::Len(entry) = wire else {
                    return Err(malformed(
                        def.name,
                        f.rust,
                        "map entry is not length-delimited",
                    ));
                };
                let (k, v) = decode_map_entry(kt, vt, entry, def.name, f.rust, depth)?;
                let map = out.entry(key).or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(map) = map {
                    map.insert(k, v);
                }
            }
        }
    }
    Ok(out)
}

/// A map entry is a small message: key = 1, value = 2; a missing part takes its default.
fn decode_map_entry(
    kt: Ty,
    vt: Ty,
    buf: &[u8],
    msg: &str,
    field: &str,
    depth: usize,
) -> Result<(String, Value), ProtoError> {
    let mut key = None;
    let mut value = None;
    let mut r = Reader { buf };
    while let Some((tag, wire)) = r.field().map_err(|(_, e)| malformed(msg, field, e))? {
        match tag {
            1 => key = Some(decode_value(kt, wire, msg, field, depth)?),
            2 => value = Some(decode_value(vt, wire, msg, field, depth)?),
            _ => {}
        }
    }
    let key = match key {
        Some(Value::String(s)) => s,
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let value = match value {
        Some(v) => v,
        None => match vt {
            Ty::String | Ty::Bytes => Value::String(String::new()),
            Ty::Bool => Value::Bool(false),
            Ty::Message(_) => decode_value(vt, Wire::Len(&[]), msg, field, depth)?,
            _ => Value::from(0),
        },
    };
    Ok((key, value))
}

/// Decodes a message into its JSON form, handling the types Go marshals specially.
fn decode_message(def: &MessageDef, buf: &[u8], depth: usize) -> Result<Value, ProtoError> {
    let simple = def.name.rsplit('.').next().unwrap_or(def.name);
    let package = def.name.strip_suffix(simple).unwrap_or("");
    let special = match (package, simple) {
        ("k8s.io.apimachinery.pkg.util.intstr.", "IntOrString") => Special::IntOrString,
        ("k8s.io.apimachinery.pkg.api.resource.", "Quantity") => Special::Quantity,
        ("k8s.io.apimachinery.pkg.apis.meta.v1.", "Time") => Special::Time,
        ("k8s.io.apimachinery.pkg.apis.meta.v1.", "MicroTime") => Special::MicroTime,
        ("k8s.io.apimachinery.pkg.apis.meta.v1.", "Duration") => Special::Duration,
        ("k8s.io.apimachinery.pkg.apis.meta.v1.", "FieldsV1")
        | ("k8s.io.apimachinery.pkg.runtime.", "RawExtension") => Special::Raw,
        (p, "JSON") if p.starts_with("k8s.io.apiextensions_apiserver.") => Special::Raw,
        (p, "Json") if p.starts_with("k8s.io.apiextensions_apiserver.") => Special::Raw,
        (p, "ExtraValue") if p.starts_with("k8s.io.api.") => Special::Items,
        _ => Special::None,
    };
    if let Special::None = special {
        let mut fields = decode_fields(def, buf, depth, false)?;
        // Empty strings stand for "no value" in Go's types (see the crate docs).
        fields.retain(|_, v| v.as_str() != Some(""));
        return Ok(Value::Object(fields));
    }
    let f = decode_fields(def, buf, depth, true)?;
    let int = |k: &str| f.get(k).and_then(Value::as_i64);
    let bad = |field: &str, reason: &str| malformed(def.name, field, reason);
    Ok(match special {
        Special::None => Value::Null,
        // type 0 is an int, 1 a string (Go's intstr.Type).
        Special::IntOrString => match int("type").unwrap_or(0) {
            1 => f
                .get("str_val")
                .cloned()
                .unwrap_or_else(|| Value::String(String::new())),
            _ => f.get("int_val").cloned().unwrap_or_else(|| Value::from(0)),
        },
        Special::Quantity => f
            .get("string")
            .cloned()
            .unwrap_or_else(|| Value::String("0".into())),
        // Go marshals the zero time as an empty message and as JSON null; JSON Time has
        // second precision (Go drops the nanoseconds when reading protobuf, too).
        Special::Time => match int("seconds") {
            None if f.is_empty() => Value::Null,
            s => Value::String(rfc3339(s.unwrap_or(0), None).map_err(|e| bad("seconds", &e))?),
        },
        Special::MicroTime => match int("seconds") {
            None if f.is_empty() => Value::Null,
            s => {
                let nanos = int("nanos").unwrap_or(0);
                Value::String(rfc3339(s.unwrap_or(0), Some(nanos)).map_err(|e| bad("seconds", &e))?)
            }
        },
        Special::Duration => Value::String(go_duration(int("duration").unwrap_or(0))),
        Special::Raw => {
            let raw = match f.get("raw") {
                Some(Value::String(b64)) => base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|_| bad("raw", "cannot re-read bytes"))?,
                _ => Vec::new(),
            };
            if raw.is_empty() {
                Value::Null
            } else if raw.starts_with(MAGIC) {
                // An embedded object sent as protobuf itself.
                decode_at_depth(&raw, depth + 1)?
            } else {
                serde_json::from_slice(&raw)
                    .map_err(|e| bad("raw", &format!("embedded object is not JSON: {e}")))?
            }
        }
        Special::Items => f
            .get("items")
            .cloned()
            .unwrap_or_else(|| Value::Array(Vec::new())),
    })
}

/// Message types whose JSON form is not an object of their fields.
enum Special {
    None,
    IntOrString,
    Quantity,
    Time,
    MicroTime,
    Duration,
    /// RawExtension, FieldsV1 and apiextensions JSON: `raw` holds JSON.
    Raw,
    /// ExtraValue: JSON is the bare `items` array.
    Items,
}

/// RFC 3339 in UTC: whole seconds (`Time`) or with six fractional digits (`MicroTime`).
fn rfc3339(seconds: i64, nanos: Option<i64>) -> Result<String, String> {
    let ts =
        jiff::Timestamp::from_second(seconds).map_err(|e| format!("time out of range: {e}"))?;
    let base = ts.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    Ok(match nanos {
        None => format!("{base}Z"),
        Some(n) => format!("{base}.{:06}Z", n.clamp(0, 999_999_999) / 1000),
    })
}

/// Go's `time.Duration.String()`: "0s", "1m0s", "1h30m0s", "1.5s", "1.5ms", "100ns".
fn go_duration(d: i64) -> String {
    if d == 0 {
        return "0s".into();
    }
    let sign = if d < 0 { "-" } else { "" };
    let u = d.unsigned_abs();
    /// `v` scaled down by 10^prec, with the fraction trimmed of trailing zeros.
    fn frac(v: u64, prec: u32) -> String {
        let p = 10u64.pow(prec);
        let (whole, rem) = (v / p, v % p);
        if rem == 0 {
            return whole.to_string();
        }
        let digits = format!("{rem:0width$}", width = prec as usize);
        format!("{whole}.{}", digits.trim_end_matches('0'))
    }
    if u < 1_000_000_000 {
        let (prec, unit) = if u < 1_000 {
            (0, "ns")
        } else if u < 1_000_000 {
            (3, "µs")
        } else {
            (6, "ms")
        };
        return format!("{sign}{}{unit}", frac(u, prec));
    }
    let secs = frac(u % 60_000_000_000, 9);
    let minutes_total = u / 60_000_000_000;
    let (h, m) = (minutes_total / 60, minutes_total % 60);
    if h > 0 {
        format!("{sign}{h}h{m}m{secs}s")
    } else if m > 0 {
        format!("{sign}{m}m{secs}s")
    } else {
        format!("{sign}{secs}s")
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(60_000_000_000), "1m0s");
        assert_eq!(go_duration(5_400_000_000_000), "1h30m0s");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(1_500_000), "1.5ms");
        assert_eq!(go_duration(100), "100ns");
        assert_eq!(go_duration(-2_000), "-2µs");
    }

    #[test]
    fn times() {
        assert_eq!(
            rfc3339(1_795_428_000, None).unwrap(),
            "2026-11-23T10:00:00Z"
        );
        assert_eq!(
            rfc3339(1_795_428_000, Some(123_456_789)).unwrap(),
            "2026-11-23T10:00:00.123456Z"
        );
    }

    #[test]
    fn table_has_acronyms_and_kinds() {
        let spec = find_message("k8s.io.api.core.v1.PodSpec").unwrap();
        assert!(spec.fields.iter().any(|f| f.json == "hostIPC"));
        assert!(
            message_for_kind("apps/v1", "Deployment")
                .is_some_and(|m| m.name == "k8s.io.api.apps.v1.Deployment")
        );
        assert!(message_for_kind("authentication.k8s.io/v1", "TokenRequest").is_some());
    }
}
