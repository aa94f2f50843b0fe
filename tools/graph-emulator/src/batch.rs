//! JSON batching (`POST /v1.0/$batch`, learn.microsoft.com/graph/json-batching).
//!
//! At most 20 requests; ids unique; `dependsOn` orders execution and a
//! failed dependency fails its dependants with 424. Each inner request goes
//! through the full pipeline (auth, per-mailbox throttling, faults other
//! than connection resets), at most 4 at a time as Graph does towards
//! Outlook. Bodies follow the OData JSON batch rules: JSON for
//! `application/json`, the plain string for `text/*` (so a MIME create's body
//! is its base64 MIME as is), base64url for anything else. The outer call answers 200 whatever the inner statuses, and the
//! responses come back in a shuffled order (seeded by --seed).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use bytes::Bytes;
use futures::StreamExt;
use hyper::Method;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value, json};

use crate::http::{Req, Resp, graph_error};
use crate::{App, Outcome, graph};

/// Graph's limit on requests in one batch.
pub const MAX_BATCH: usize = 20;
/// Requests of one batch run against Outlook at the same time.
const BATCH_PARALLELISM: usize = 4;

struct Item {
    id: String,
    method: Method,
    url: String,
    headers: HeaderMap,
    body: Bytes,
    depends_on: Vec<String>,
}

fn invalid(req: &Req, msg: &str) -> Resp {
    graph_error(req, 400, "BadRequest", msg)
}

/// Validates the batch payload into items, or answers 400 for the whole batch.
fn parse(req: &Req) -> Result<Vec<Item>, Resp> {
    let body: Value = serde_json::from_slice(&req.body).map_err(|_| invalid(req, "Invalid batch payload format."))?;
    let requests = body
        .get("requests")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid(req, "Invalid batch payload format."))?;
    if requests.len() > MAX_BATCH {
        return Err(invalid(req, "Number of requests inside batch exceed the limit."));
    }
    let mut items = Vec::new();
    let mut seen = HashSet::new();
    for r in requests {
        let o = r
            .as_object()
            .ok_or_else(|| invalid(req, "Invalid batch payload format."))?;
        let id = match o.get("id") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(invalid(req, "Each request in a batch requires an 'id'.")),
        };
        if !seen.insert(id.to_lowercase()) {
            return Err(invalid(
                req,
                &format!("Request ids in a batch must be unique; '{id}' is repeated."),
            ));
        }
        let method = o
            .get("method")
            .and_then(Value::as_str)
            .and_then(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok())
            .ok_or_else(|| invalid(req, &format!("Request '{id}' has no valid 'method'.")))?;
        let url = o
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(req, &format!("Request '{id}' has no 'url'.")))?;
        if url.contains("://") {
            return Err(invalid(
                req,
                &format!("Request '{id}': the url must be relative to the version, e.g. /users/..."),
            ));
        }
        let mut headers = HeaderMap::new();
        if let Some(h) = o.get("headers") {
            let h = h
                .as_object()
                .ok_or_else(|| invalid(req, &format!("Request '{id}': headers must be an object.")))?;
            for (k, v) in h {
                let v = v
                    .as_str()
                    .ok_or_else(|| invalid(req, &format!("Request '{id}': header values must be strings.")))?;
                if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
                    headers.insert(n, v);
                }
            }
        }
        let body = match o.get("body") {
            None | Some(Value::Null) => Bytes::new(),
            Some(b) => {
                let ct = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| {
                        invalid(
                            req,
                            &format!("Request '{id}': a Content-Type header is required when a body is present."),
                        )
                    })?
                    .to_ascii_lowercase();
                if ct.starts_with("application/json") {
                    Bytes::from(serde_json::to_vec(b).unwrap_or_default())
                } else if ct.starts_with("text/") {
                    // OData JSON batch: a text/* body is the string itself (so a
                    // MIME create carries its base64 MIME once, not twice).
                    let s = b
                        .as_str()
                        .ok_or_else(|| invalid(req, &format!("Request '{id}': a text body must be a string.")))?;
                    Bytes::from(s.to_string())
                } else {
                    // Other media types travel base64url-encoded; the standard
                    // alphabet is accepted too.
                    let s = b.as_str().ok_or_else(|| {
                        invalid(req, &format!("Request '{id}': a binary body must be a base64 string."))
                    })?;
                    let decoded = URL_SAFE
                        .decode(s)
                        .or_else(|_| URL_SAFE_NO_PAD.decode(s))
                        .or_else(|_| STANDARD.decode(s))
                        .map_err(|_| invalid(req, &format!("Request '{id}': the body is not valid base64.")))?;
                    Bytes::from(decoded)
                }
            }
        };
        let depends_on = match o.get("dependsOn") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|d| d.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| invalid(req, &format!("Request '{id}': dependsOn must list ids.")))?,
            Some(_) => {
                return Err(invalid(req, &format!("Request '{id}': dependsOn must be an array.")));
            }
        };
        items.push(Item {
            id,
            method,
            url: url.to_string(),
            headers,
            body,
            depends_on,
        });
    }
    // Every dependency must name another request of the batch, without cycles.
    let ids: HashSet<String> = items.iter().map(|i| i.id.to_lowercase()).collect();
    for i in &items {
        for d in &i.depends_on {
            if !ids.contains(&d.to_lowercase()) || d.eq_ignore_ascii_case(&i.id) {
                return Err(invalid(
                    req,
                    &format!("Request '{}' depends on unknown request '{d}'.", i.id),
                ));
            }
        }
    }
    let mut done: HashSet<String> = HashSet::new();
    loop {
        let ready: Vec<String> = items
            .iter()
            .filter(|i| !done.contains(&i.id.to_lowercase()))
            .filter(|i| i.depends_on.iter().all(|d| done.contains(&d.to_lowercase())))
            .map(|i| i.id.to_lowercase())
            .collect();
        if ready.is_empty() {
            break;
        }
        done.extend(ready);
    }
    if done.len() != items.len() {
        return Err(invalid(req, "The dependsOn references in the batch form a cycle."));
    }
    Ok(items)
}

/// One inner response in batch form.
fn entry(id: &str, resp: &Resp) -> Value {
    let mut headers = Map::new();
    for (k, v) in &resp.headers {
        if let Ok(v) = v.to_str() {
            let name = match k.as_str() {
                "content-type" => "Content-Type",
                "retry-after" => "Retry-After",
                "location" => "Location",
                "cache-control" => "Cache-Control",
                "odata-version" => "OData-Version",
                other => other,
            };
            headers.insert(name.to_string(), json!(v));
        }
    }
    let mut o = Map::new();
    o.insert("id".into(), json!(id));
    o.insert("status".into(), json!(resp.status_u16()));
    o.insert("headers".into(), Value::Object(headers));
    if !resp.body.is_empty() {
        let is_json = resp.content_type().is_some_and(|c| c.starts_with("application/json"));
        let is_text = resp.content_type().is_some_and(|c| c.starts_with("text/"));
        let body = if is_json {
            serde_json::from_slice(&resp.body).unwrap_or(Value::Null)
        } else if let (true, Ok(text)) = (is_text, std::str::from_utf8(&resp.body)) {
            json!(text)
        } else {
            // Binary (or text that is not UTF-8): base64url, per OData JSON batch.
            json!(URL_SAFE.encode(&resp.body))
        };
        o.insert("body".into(), body);
    }
    Value::Object(o)
}

/// Runs a batch; `version` is the outer request's ("v1.0" or "beta").
pub async fn run(app: Arc<App>, outer: &Req, version: &str) -> Resp {
    if outer.content_type().as_deref() != Some("application/json") {
        return graph_error(
            outer,
            415,
            "UnsupportedMediaType",
            "A batch request must be sent with Content-Type application/json.",
        );
    }
    let items = match parse(outer) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let auth = outer.headers.get("authorization").cloned();
    let arrived = outer.arrived;
    let mut statuses: HashMap<String, u16> = HashMap::new();
    let mut responses: Vec<Value> = Vec::new();
    let mut pending: Vec<Item> = items;
    while !pending.is_empty() {
        let (ready, rest): (Vec<Item>, Vec<Item>) = pending
            .into_iter()
            .partition(|i| i.depends_on.iter().all(|d| statuses.contains_key(&d.to_lowercase())));
        pending = rest;
        let mut runnable = Vec::new();
        for item in ready {
            let failed_dep = item
                .depends_on
                .iter()
                .any(|d| statuses.get(&d.to_lowercase()).is_some_and(|s| !(200..300).contains(s)));
            if failed_dep {
                let resp = graph_error(
                    outer,
                    424,
                    "FailedDependency",
                    "The request depends on a request that failed.",
                );
                statuses.insert(item.id.to_lowercase(), 424);
                responses.push(entry(&item.id, &resp));
            } else {
                runnable.push(item);
            }
        }
        let results: Vec<(String, Resp)> = futures::stream::iter(runnable.into_iter().map(|item| {
            let app = app.clone();
            let auth = auth.clone();
            let version = version.to_string();
            async move {
                let mut headers = item.headers;
                if let Some(a) = auth {
                    headers.insert("authorization", a);
                }
                let url = item.url.trim_start_matches('/');
                let mut req = Req::new(item.method, &format!("/{version}/{url}"), headers, item.body);
                req.arrived = arrived;
                let resp = match graph::handle(app, req, true).await {
                    Outcome::Resp(r) => r,
                    Outcome::Reset => Resp::new(500),
                };
                (item.id, resp)
            }
        }))
        .buffer_unordered(BATCH_PARALLELISM)
        .collect()
        .await;
        for (id, resp) in results {
            statuses.insert(id.to_lowercase(), resp.status_u16());
            responses.push(entry(&id, &resp));
        }
    }
    app.rng.lock().unwrap().shuffle(&mut responses);
    Resp::json(200, &json!({ "responses": responses }))
}
