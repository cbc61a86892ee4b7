//! The shop's background worker: periodically checks widget stock via the API.

use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use shop::{BaseUrl, http_get, parse_base_url, say};

/// The polling interval used when `WORKER_INTERVAL_MS` is not set.
const DEFAULT_INTERVAL_MS: u64 = 1000;

/// Pulls the number after `"count":` out of the API's JSON answer; the demo
/// avoids a JSON library, and this field is always a plain integer.
fn extract_count(body: &str) -> Option<u64> {
    let after = body.split_once("\"count\":")?.1.trim_start();
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Performs one check and describes its outcome.
fn check(api: &BaseUrl) -> String {
    match http_get(api, "/items/widget") {
        Ok(response) if response.status == 200 => match extract_count(&response.body) {
            Some(count) => count.to_string(),
            None => "error (no count in answer)".to_string(),
        },
        Ok(response) => format!("error (api answered {})", response.status),
        Err(message) => format!("error ({message})"),
    }
}

fn main() -> ExitCode {
    if std::env::args().len() > 1 {
        eprintln!(
            "shop-worker: takes no arguments\nusage: API_URL=http://127.0.0.1:PORT shop-worker"
        );
        return ExitCode::from(2);
    }
    let Ok(api_url) = std::env::var("API_URL") else {
        eprintln!(
            "shop-worker: API_URL is not set; it must name the API service, like http://127.0.0.1:4000"
        );
        return ExitCode::from(2);
    };
    let api_url = api_url.trim_end_matches('/').to_string();
    let api = match parse_base_url(&api_url) {
        Ok(api) => api,
        Err(message) => {
            eprintln!("shop-worker: bad API_URL: {message}");
            return ExitCode::from(2);
        }
    };
    let interval_ms = match std::env::var("WORKER_INTERVAL_MS") {
        Ok(text) => match text.trim().parse::<u64>() {
            Ok(milliseconds) if milliseconds > 0 => milliseconds,
            _ => {
                eprintln!(
                    "shop-worker: WORKER_INTERVAL_MS must be a positive integer, got {text:?}"
                );
                return ExitCode::from(2);
            }
        },
        Err(_) => DEFAULT_INTERVAL_MS,
    };
    say(&format!(
        "shop-worker started api_url={api_url} interval_ms={interval_ms}"
    ));
    // The worker runs until a signal ends it; SIGTERM keeps its default
    // action, which is exactly the "just die" behaviour we want.
    loop {
        say(&format!("worker: widget stock={}", check(&api)));
        thread::sleep(Duration::from_millis(interval_ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_count() {
        let body = r#"{"item":"widget","instance":"","stock":{"item":"widget","count":42}}"#;
        assert_eq!(extract_count(body), Some(42));
        assert_eq!(extract_count("{}"), None);
    }
}
