//! Request and response plumbing shared by every endpoint.
//!
//! Handlers work on a fully read [`Req`] and return a [`Resp`], plain values
//! that can equally be sent on the wire or folded into a `$batch` response.
//! The Graph error body (`{"error":{"code","message","innerError"}}`) is built
//! in one place so every endpoint reports errors the same way Graph does.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Response, StatusCode};
use percent_encoding::percent_decode_str;
use serde_json::{Value, json};

/// Content type Graph puts on JSON responses.
pub const ODATA_JSON: &str =
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

/// A request whose body has been read completely.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: Method,
    /// Path segments, percent-decoded (`/v1.0/users/a%40b` → `["v1.0","users","a@b"]`).
    pub segments: Vec<String>,
    /// Raw path as received, for reports.
    pub path: String,
    /// Query parameters, percent-decoded. `+` stays `+`: OData URLs follow
    /// RFC 3986, and Message-IDs often contain `+`.
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Value of the `request-id` response header and of `innerError.request-id`.
    pub request_id: String,
    /// When the request started to arrive (for a `$batch` item: when the
    /// batch did). Decides whether it was sent after a Retry-After.
    pub arrived: std::time::Instant,
}

impl Req {
    /// Builds a request from a method, a path with optional query, headers and body.
    pub fn new(method: Method, path_and_query: &str, headers: HeaderMap, body: Bytes) -> Req {
        let (path, raw_query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_and_query, None),
        };
        let segments = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
            .collect();
        Req {
            method,
            segments,
            path: path.to_string(),
            query: raw_query.map(parse_query).unwrap_or_default(),
            headers,
            body,
            request_id: new_request_id(),
            arrived: std::time::Instant::now(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// First value of a query parameter.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Media type of the body, lower-cased and without parameters.
    pub fn content_type(&self) -> Option<String> {
        self.header("content-type")
            .map(|ct| ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
    }
}

/// Splits and percent-decodes a query string.
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (
                percent_decode_str(k).decode_utf8_lossy().into_owned(),
                percent_decode_str(v).decode_utf8_lossy().into_owned(),
            )
        })
        .collect()
}

/// Parses an `application/x-www-form-urlencoded` body (where `+` is a space).
pub fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let dec = |s: &str| {
                percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (dec(k), dec(v))
        })
        .collect()
}

/// A random request id in GUID form, as Graph's `request-id` header.
pub fn new_request_id() -> String {
    guid(&mut fastrand::Rng::new())
}

/// A random GUID-formatted string.
pub fn guid(rng: &mut fastrand::Rng) -> String {
    let mut b = [0u8; 16];
    rng.fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The parts of a response.
#[derive(Debug, Clone)]
pub struct RespParts {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A response built by a handler (boxed: it travels in `Result::Err` a lot).
#[derive(Debug, Clone)]
pub struct Resp(Box<RespParts>);

impl std::ops::Deref for Resp {
    type Target = RespParts;
    fn deref(&self) -> &RespParts {
        &self.0
    }
}

impl std::ops::DerefMut for Resp {
    fn deref_mut(&mut self) -> &mut RespParts {
        &mut self.0
    }
}

impl Resp {
    pub fn new(status: u16) -> Resp {
        Resp(Box::new(RespParts {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }))
    }

    /// A JSON response with Graph's OData content type.
    pub fn json(status: u16, v: &Value) -> Resp {
        Resp::new(status)
            .header("content-type", ODATA_JSON)
            .header("odata-version", "4.0")
            .body(Bytes::from(serde_json::to_vec(v).unwrap_or_default()))
    }

    /// A JSON response with a plain `application/json` content type (token and admin endpoints).
    pub fn plain_json(status: u16, v: &Value) -> Resp {
        Resp::new(status)
            .header("content-type", "application/json; charset=utf-8")
            .body(Bytes::from(serde_json::to_vec(v).unwrap_or_default()))
    }

    pub fn header(mut self, name: &str, value: &str) -> Resp {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            self.headers.insert(n, v);
        }
        self
    }

    pub fn body(mut self, body: Bytes) -> Resp {
        self.body = body;
        self
    }

    pub fn status_u16(&self) -> u16 {
        self.status.as_u16()
    }

    /// Content type of the body, if any.
    pub fn content_type(&self) -> Option<&str> {
        self.headers.get("content-type").and_then(|v| v.to_str().ok())
    }

    pub fn into_hyper(self) -> Response<Full<Bytes>> {
        let parts = *self.0;
        let mut resp = Response::new(Full::new(parts.body));
        *resp.status_mut() = parts.status;
        *resp.headers_mut() = parts.headers;
        resp
    }
}

/// A Graph error response: `{"error":{"code","message","innerError":{date,request-id,client-request-id}}}`.
pub fn graph_error(req: &Req, status: u16, code: &str, message: &str) -> Resp {
    let client_request_id = req
        .header("client-request-id")
        .map(str::to_string)
        .unwrap_or_else(|| req.request_id.clone());
    let body = json!({
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string(),
                "request-id": req.request_id,
                "client-request-id": client_request_id,
            }
        }
    });
    Resp::json(status, &body)
}

/// Adds the headers Graph sets on every response.
pub fn stamp(req: &Req, mut resp: Resp) -> Resp {
    if !resp.headers.contains_key("request-id") {
        resp = resp.header("request-id", &req.request_id.clone());
    }
    let client_request_id = req
        .header("client-request-id")
        .map(str::to_string)
        .unwrap_or_else(|| req.request_id.clone());
    resp = resp.header("client-request-id", &client_request_id);
    if !resp.headers.contains_key("cache-control") {
        resp = resp.header("cache-control", "no-cache");
    }
    resp
}

/// `400 BadRequest` for a path segment Graph's router does not know.
pub fn unknown_segment(req: &Req, seg: &str) -> Resp {
    graph_error(
        req,
        400,
        "BadRequest",
        &format!("Resource not found for the segment '{seg}'."),
    )
}

/// `405` for a known resource addressed with a method it does not support.
pub fn method_not_allowed(req: &Req) -> Resp {
    graph_error(
        req,
        405,
        "Request_BadRequest",
        "Specified HTTP method is not allowed for the request target.",
    )
}

/// `501` for a Graph feature this emulator does not implement. Distinct from
/// Graph's own errors so a test failure points at the emulator, not the product.
pub fn not_implemented(req: &Req, what: &str) -> Resp {
    graph_error(
        req,
        501,
        "NotImplemented",
        &format!("The Graph emulator does not implement {what}."),
    )
}

/// `400` for a body that is not valid JSON, with Graph's message.
pub fn bad_json(req: &Req) -> Resp {
    graph_error(
        req,
        400,
        "BadRequest",
        "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
    )
}

/// Parses a JSON object body, or returns Graph's error for an unreadable payload.
pub fn json_object(req: &Req) -> Result<serde_json::Map<String, Value>, Resp> {
    match req.content_type().as_deref() {
        Some("application/json") => {}
        _ => {
            // Graph's JSON endpoints answer 415 to other media types.
            return Err(graph_error(
                req,
                415,
                "UnsupportedMediaType",
                "The content type of the request is not supported; use application/json.",
            ));
        }
    }
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(bad_json(req)),
    }
}

/// Graph's error for a JSON property the target type does not define.
pub fn unknown_property(req: &Req, prop: &str, type_name: &str) -> Resp {
    graph_error(
        req,
        400,
        "RequestBodyRead",
        &format!(
            "The property '{prop}' does not exist on type '{type_name}'. Make sure to only use property names that are defined by the type or mark the type as open type."
        ),
    )
}

/// Graph's error for a JSON value of the wrong type.
pub fn bad_value(req: &Req, prop: &str, expected: &str) -> Resp {
    graph_error(
        req,
        400,
        "RequestBodyRead",
        &format!("Cannot convert the value of property '{prop}' to the expected type '{expected}'."),
    )
}
