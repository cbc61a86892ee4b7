//! The shop's stock service: answers how many of an item are in stock.

use std::process::ExitCode;

use shop::{Request, Response, bind_loopback, json_escape, parse_port, say, serve};

/// Derives a stable stock count from the item name, so every run and every
/// instance of the demo reports the same numbers without any storage.
fn stock_count(item: &str) -> u32 {
    item.bytes().map(u32::from).sum::<u32>() % 50
}

/// Routes one request.
fn handle(request: &Request) -> Response {
    if request.path == "/health" {
        return Response::text(200, "ok");
    }
    match request.path.strip_prefix("/stock/") {
        Some(item) if !item.is_empty() && !item.contains('/') => Response::json(
            200,
            format!(
                "{{\"item\":\"{}\",\"count\":{}}}",
                json_escape(item),
                stock_count(item)
            ),
        ),
        _ => Response::not_found(),
    }
}

fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let port = match parse_port(&arguments) {
        Ok(port) => port,
        Err(message) => {
            eprintln!("shop-stock: {message}\nusage: shop-stock --port P");
            return ExitCode::from(2);
        }
    };
    let listener = match bind_loopback(port) {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("shop-stock: cannot listen on 127.0.0.1:{port}: {error}");
            return ExitCode::from(1);
        }
    };
    say(&format!("shop-stock listening on 127.0.0.1:{port}"));
    match serve(listener, None, handle) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("shop-stock: {error}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_deterministic_and_small() {
        assert_eq!(stock_count("widget"), stock_count("widget"));
        assert!(stock_count("gadget") < 50);
    }

    #[test]
    fn routes() {
        let get = |path: &str| Request {
            method: "GET".to_string(),
            path: path.to_string(),
        };
        assert_eq!(handle(&get("/health")).body, "ok");
        assert_eq!(handle(&get("/stock/")).status, 404);
        assert_eq!(handle(&get("/nope")).status, 404);
        let widget = handle(&get("/stock/widget"));
        assert_eq!(widget.status, 200);
        assert!(widget.body.starts_with("{\"item\":\"widget\",\"count\":"));
    }
}
