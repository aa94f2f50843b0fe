//! Helpers the emulator's integration test files share.

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

/// Sends a request and reads its answer as JSON (`Null` when the body is not JSON).
pub async fn send_json(rb: reqwest::RequestBuilder) -> (StatusCode, HeaderMap, Value) {
    let r = rb.send().await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let bytes = r.bytes().await.unwrap();
    (status, headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// The status of each response of a `$batch` answer, in order.
pub fn batch_statuses(v: &Value) -> Vec<u64> {
    v["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect()
}

/// The Graph error code of an error body ("" when there is none).
pub fn error_code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}
