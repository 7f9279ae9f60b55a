//! Webhooks: the alert as a JSON POST. Connection errors, timeouts, 429 and 5xx
//! answers are retried with exponential backoff (0.2 s doubling, at most 10 s); other
//! 4xx answers are final (the receiver said no; asking again will not change that).

use std::time::Duration;

/// POST `body`; Ok(attempts it took).
pub fn post(
    url: &str,
    headers: &[(String, String)],
    body: &serde_json::Value,
    retries: u32,
    timeout_ms: u64,
) -> Result<u32, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_millis(timeout_ms)))
        .http_status_as_error(false)
        .user_agent(concat!("bulkhead/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let bytes = serde_json::to_vec(body).map_err(|e| e.to_string())?;
    let mut delay = Duration::from_millis(200);
    let mut last = String::new();
    for attempt in 1..=retries + 1 {
        let mut req = agent.post(url).header("Content-Type", "application/json");
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        match req.send(&bytes[..]) {
            Ok(resp) => {
                let status = resp.status().as_u16();
                if (200..300).contains(&status) {
                    return Ok(attempt);
                }
                last = format!("HTTP {status}");
                if status != 429 && status < 500 {
                    return Err(last);
                }
            }
            Err(e) => last = e.to_string(),
        }
        if attempt <= retries {
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    }
    Err(format!("{last} after {} attempts", retries + 1))
}
