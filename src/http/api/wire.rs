//! The `/api` wire types that make the OpenAPI document exact: strict JSON
//! strings that carry the limits their domain parser enforces, nullable
//! fields that are always present, positive ids, refusals documented per
//! operation with one error schema, and the request bodies the handlers
//! read by hand (an optional JSON body, streamed multipart forms).
//!
//! Limits in the document are what a client can check before sending; the
//! domain parsers stay the authority and refuse with 422 and their own
//! sentence, so a value the schema allows can still be refused (a path with
//! `..`), and a refusal never changes status because the schema knows it.

use std::borrow::Cow;
use std::marker::PhantomData;

use poem::web::Multipart;
use poem::{FromRequest, Request, RequestBody};
use poem_openapi::payload::Payload;
use poem_openapi::registry::{
    MetaHeader, MetaMediaType, MetaRequest, MetaResponse, MetaResponses, MetaSchema, MetaSchemaRef,
    Registry,
};
use poem_openapi::types::{
    ParseError, ParseFromJSON, ParseFromMultipartField, ParseFromParameter, ParseResult, ToJSON,
    Type,
};
use poem_openapi::{ApiExtractor, ApiExtractorType, ApiResponse, ExtractParamOptions, Object};
use serde_json::Value;

use crate::domain::Invalid;
use crate::error::AppError;
use crate::http::error::{Surface, refusal};

/// The body of every refusal under `/api`.
#[derive(Object)]
pub struct ErrorBody {
    /// A sentence a person understands.
    pub error: String,
    /// For a change set refused with 409: each file in its way and who
    /// holds it (or whom it is reserved for).
    #[oai(skip_serializing_if_is_none)]
    pub conflicts: Option<Vec<ConflictJson>>,
}

/// A file a change set could not take.
#[derive(Object)]
#[oai(rename = "Conflict")]
pub struct ConflictJson {
    pub id: u64,
    pub path: String,
    pub owner: String,
}

/// What a [`Text`] is documented as: its schema, and the types it refers to.
pub trait Shape: Send + Sync + 'static {
    fn schema_ref() -> MetaSchemaRef;
    fn register(_registry: &mut Registry) {}
}

/// A string of `MIN..=MAX` characters matching the pattern of `KIND`
/// (the document counts characters; where the parser counts bytes, the
/// field's description says so). Patterns say what a client can check
/// alone: no control characters, something besides spaces; rules that need
/// the server (`..` in a path, a taken name) stay with the parser.
pub struct Rule<const KIND: u8, const MIN: usize, const MAX: usize>;

/// Any characters.
pub const ANY: u8 = 0;
/// One line: no control characters.
pub const LINE: u8 = 1;
/// Text: no control characters but newline, carriage return and tab.
pub const TEXT: u8 = 2;
/// One line with at least one character that is not a space.
pub const NAME: u8 = 3;
/// A display name: one line without `<` or `>`.
pub const DISPLAY: u8 = 4;
/// Text with at least one character that is not a space.
pub const MESSAGE: u8 = 5;
/// A vault path: one line, no backslash, not starting with `/`; empty
/// means "the uploaded file's name".
pub const PATH: u8 = 6;
/// An absolute path on the server.
pub const DIR: u8 = 7;
pub const USERNAME: u8 = 8;
pub const REVISION: u8 = 9;

pub type Chars<const MIN: usize, const MAX: usize> = Rule<ANY, MIN, MAX>;

macro_rules! cc {
    () => {
        r"\u0000-\u001F\u007F-\u009F"
    };
}
macro_rules! cc_but_text {
    () => {
        r"\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F"
    };
}

fn pattern(kind: u8) -> Option<&'static str> {
    Some(match kind {
        LINE => concat!("^[^", cc!(), "]*$"),
        TEXT => concat!("^[^", cc_but_text!(), "]*$"),
        NAME => concat!("^[^", cc!(), r"]*[^\s", cc!(), "][^", cc!(), "]*$"),
        DISPLAY => concat!("^[^<>", cc!(), "]*$"),
        MESSAGE => concat!(
            "^[^",
            cc_but_text!(),
            r"]*[^\s",
            cc!(),
            "][^",
            cc_but_text!(),
            "]*$"
        ),
        PATH => concat!(r"^([^/\\", cc!(), r"][^\\", cc!(), "]*)?$"),
        // Each name in it at most 255 bytes, as file systems allow.
        DIR => r"^(/[^/\u0000]{0,255})+$",
        USERNAME => "^[a-z0-9._-]{3,32}$",
        REVISION => r"^[0-9]{1,6}\.[0-9]{1,6}$",
        _ => return None,
    })
}

impl<const KIND: u8, const MIN: usize, const MAX: usize> Shape for Rule<KIND, MIN, MAX> {
    fn schema_ref() -> MetaSchemaRef {
        let mut schema = MetaSchema::new("string");
        schema.min_length = (MIN > 0).then_some(MIN);
        schema.max_length = Some(MAX);
        schema.pattern = pattern(KIND).map(str::to_string);
        MetaSchemaRef::Inline(Box::new(schema))
    }
}

/// A JSON string and only a string. poem-openapi's `String` also takes
/// numbers and booleans (`1` becomes `"1"`); this refuses them with 400.
/// The value is kept as sent: the domain parser checks it.
pub struct Text<S>(String, PhantomData<S>);

impl<S> Text<S> {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<S: Shape> Type for Text<S> {
    const IS_REQUIRED: bool = true;
    type RawValueType = String;
    type RawElementValueType = String;

    fn name() -> Cow<'static, str> {
        "string".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        S::schema_ref()
    }

    fn register(registry: &mut Registry) {
        S::register(registry);
    }

    fn as_raw_value(&self) -> Option<&String> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a String> + 'a> {
        Box::new(std::iter::once(&self.0))
    }
}

impl<S: Shape> ParseFromJSON for Text<S> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(s)) => Ok(Text(s, PhantomData)),
            Some(other) => Err(ParseError::expected_type(other)),
            None => Err(ParseError::expected_input()),
        }
    }
}

impl<S: Shape> ParseFromParameter for Text<S> {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        Ok(Text(value.to_string(), PhantomData))
    }
}

impl<S: Shape> ParseFromMultipartField for Text<S> {
    async fn parse_from_multipart(field: Option<poem::web::Field>) -> ParseResult<Self> {
        match field {
            Some(field) => Ok(Text(
                field.text().await.map_err(ParseError::custom)?,
                PhantomData,
            )),
            None => Err(ParseError::expected_input()),
        }
    }
}

impl<S: Shape> ToJSON for Text<S> {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

/// A field that is always present in an answer and may be `null`
/// (poem-openapi's `Option` is "may be absent", which is not what we send).
pub struct Nullable<T>(pub Option<T>);

impl<T: Type> Type for Nullable<T> {
    const IS_REQUIRED: bool = true;
    type RawValueType = T::RawValueType;
    type RawElementValueType = T::RawElementValueType;

    fn name() -> Cow<'static, str> {
        format!("nullable_{}", T::name()).into()
    }

    fn schema_ref() -> MetaSchemaRef {
        let mut nullable = MetaSchema::ANY;
        nullable.nullable = true;
        T::schema_ref().merge(nullable)
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        self.0.as_ref().and_then(Type::as_raw_value)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        match &self.0 {
            Some(v) => v.raw_element_iter(),
            None => Box::new(std::iter::empty()),
        }
    }
}

impl<T: ParseFromJSON> ParseFromJSON for Nullable<T> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            None | Some(Value::Null) => Ok(Nullable(None)),
            some => Ok(Nullable(Some(
                T::parse_from_json(some).map_err(ParseError::propagate)?,
            ))),
        }
    }
}

impl<T: ToJSON> ToJSON for Nullable<T> {
    fn to_json(&self) -> Option<Value> {
        Some(
            self.0
                .as_ref()
                .and_then(ToJSON::to_json)
                .unwrap_or(Value::Null),
        )
    }
}

/// A file or token id in a path: a whole number from 1 (ids start there).
#[derive(Clone, Copy)]
pub struct Id(pub u64);

impl Type for Id {
    const IS_REQUIRED: bool = true;
    type RawValueType = u64;
    type RawElementValueType = u64;

    fn name() -> Cow<'static, str> {
        "id".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        let mut schema = MetaSchema::new_with_format("integer", "uint64");
        schema.minimum = Some(1.0);
        // The largest integer every JSON reader holds exactly.
        schema.maximum = Some(9_007_199_254_740_991.0);
        MetaSchemaRef::Inline(Box::new(schema))
    }

    fn as_raw_value(&self) -> Option<&u64> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a u64> + 'a> {
        Box::new(std::iter::once(&self.0))
    }
}

impl ParseFromParameter for Id {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        match value.parse::<u64>() {
            Ok(n) if n >= 1 && value.bytes().all(|b| b.is_ascii_digit()) => Ok(Id(n)),
            _ => Err(ParseError::custom(format!(
                "'{value}' is not an id; ids are whole numbers from 1."
            ))),
        }
    }
}

/// The statuses a refusal can have, one bit each; an operation's answer
/// type names the ones it can give, and only those are documented for it.
const REFUSALS: [(u16, &str); 9] = [
    (
        400,
        "The request is malformed: a parameter or field has the wrong type, is missing, or was sent twice.",
    ),
    (
        401,
        "No valid credential: sign in, or send an API token or HTTP Basic credentials.",
    ),
    (
        403,
        "Not allowed: the role or lock ownership does not permit it, the X-CSRF-Token header is missing, or the request came from another site.",
    ),
    (404, "There is no such file, version, user or token."),
    (
        409,
        "The current state does not allow it (the file is checked out, the path or name is taken, …).",
    ),
    (413, "A body or a field is over its size limit."),
    (415, "The body is not of the declared content type."),
    (
        422,
        "A value is well-formed but not acceptable (too long, not a valid path, unknown role, …).",
    ),
    (
        429,
        "Too many failed sign-ins; try again after Retry-After seconds.",
    ),
];
pub const E400: u16 = 1 << 0;
pub const E401: u16 = 1 << 1;
pub const E403: u16 = 1 << 2;
pub const E404: u16 = 1 << 3;
pub const E409: u16 = 1 << 4;
pub const E413: u16 = 1 << 5;
pub const E415: u16 = 1 << 6;
pub const E422: u16 = 1 << 7;
pub const E429: u16 = 1 << 8;

/// Any signed-in read: no credential, or a throttled Basic password.
pub const READ: u16 = E401 | E429;
/// Any signed-in write: also refused from another site or without CSRF.
pub const WRITE: u16 = E401 | E403 | E429;
/// A request with a body: malformed, too large, or of another type.
pub const BODY: u16 = E400 | E413 | E415;

/// A refusal from an operation that documents the statuses in `CODES`.
/// The answer is the app's own (`AppError`'s status and sentence).
pub struct Refusal<const CODES: u16>(AppError);

impl<const CODES: u16> From<AppError> for Refusal<CODES> {
    fn from(err: AppError) -> Self {
        Refusal(err)
    }
}

impl<const CODES: u16> From<Invalid> for Refusal<CODES> {
    fn from(err: Invalid) -> Self {
        Refusal(err.into())
    }
}

impl<const CODES: u16> From<tokio::task::JoinError> for Refusal<CODES> {
    fn from(err: tokio::task::JoinError) -> Self {
        Refusal(err.into())
    }
}

impl<const CODES: u16> From<Refusal<CODES>> for poem::Error {
    fn from(r: Refusal<CODES>) -> Self {
        r.0.into()
    }
}

impl<const CODES: u16> ApiResponse for Refusal<CODES> {
    fn meta() -> MetaResponses {
        let responses = REFUSALS
            .iter()
            .enumerate()
            .filter(|(bit, _)| CODES & (1 << bit) != 0)
            .map(|(_, &(status, description))| MetaResponse {
                description,
                status: Some(status),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: "application/json; charset=utf-8",
                    schema: ErrorBody::schema_ref(),
                }],
                headers: if status == 429 {
                    vec![MetaHeader {
                        name: "Retry-After".into(),
                        description: Some("Seconds until a sign-in is tried again.".into()),
                        required: true,
                        deprecated: false,
                        schema: u64::schema_ref(),
                    }]
                } else {
                    Vec::new()
                },
            })
            .collect();
        MetaResponses { responses }
    }

    fn register(registry: &mut Registry) {
        ErrorBody::register(registry);
    }
}

/// A JSON body that may be left out: no body (or only whitespace) is the
/// same as `{}`. Types are checked as strictly as a required `Json` body.
pub struct OptionalJson<T>(pub Option<T>);

impl<'a, T: ParseFromJSON + Send> ApiExtractor<'a> for OptionalJson<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: vec![MetaMediaType {
                content_type: "application/json",
                schema: T::schema_ref(),
            }],
            required: false,
        })
    }

    async fn from_request(
        req: &'a Request,
        body: &mut RequestBody,
        _opts: ExtractParamOptions<()>,
    ) -> poem::Result<Self> {
        let bytes = body
            .take()?
            .into_bytes_limit(crate::http::serve::MAX_BODY as usize)
            .await
            .map_err(|_| AppError::TooLarge("The request body is too large.".into()))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        if let Some(ct) = req.content_type()
            && !is_json(ct)
        {
            return Err(unsupported(&format!(
                "Send this body as application/json, not {ct}."
            )));
        }
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| AppError::BadRequest(format!("The JSON body is malformed: {e}")))?;
        let parsed = T::parse_from_json(Some(value)).map_err(|e| {
            AppError::BadRequest(format!("The JSON body is not valid: {}", e.into_message()))
        })?;
        Ok(OptionalJson(Some(parsed)))
    }
}

/// 415 in the `{"error"}` shape (no `AppError` kind: only the edge says it).
fn unsupported(message: &str) -> poem::Error {
    poem::Error::from_response(refusal(
        Surface::Json,
        poem::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
        message,
    ))
}

pub fn is_json(content_type: &str) -> bool {
    let essence = crate::http::forms::media_type(content_type);
    essence == "application/json" || essence.ends_with("+json")
}

/// A multipart body documented by the `#[derive(Multipart)]` type `T`, and
/// read as a stream by `forms::read_upload` (which bounds every part), not
/// by `T`'s own parser, which would buffer the file first.
pub struct Form<T>(pub Multipart, PhantomData<T>);

impl<'a, T: Payload> ApiExtractor<'a> for Form<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: vec![MetaMediaType {
                content_type: T::CONTENT_TYPE,
                schema: T::schema_ref(),
            }],
            required: true,
        })
    }

    async fn from_request(
        req: &'a Request,
        body: &mut RequestBody,
        _opts: ExtractParamOptions<()>,
    ) -> poem::Result<Self> {
        let multipart = req
            .content_type()
            .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("multipart/form-data"));
        if !multipart {
            return Err(unsupported("Send this body as multipart/form-data."));
        }
        let form = <Multipart as FromRequest>::from_request(req, body)
            .await
            .map_err(|e| AppError::BadRequest(format!("The upload is malformed: {e}")))?;
        Ok(Form(form, PhantomData))
    }
}
