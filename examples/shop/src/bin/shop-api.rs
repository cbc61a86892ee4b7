//! The shop's API service: answers item queries by asking the stock service.

use std::process::ExitCode;

use shop::{
    BaseUrl, Request, Response, bind_loopback, http_get, json_escape, parse_base_url, parse_port,
    say, serve,
};

/// Everything a request handler needs, fixed at start-up.
struct Api {
    port: u16,
    instance: String,
    stock_url: String,
    stock: BaseUrl,
}

impl Api {
    /// Routes one request.
    fn handle(&self, request: &Request) -> Response {
        if request.path == "/health" {
            return Response::text(200, "ok");
        }
        if request.path == "/" {
            return Response::json(
                200,
                format!(
                    "{{\"service\":\"api\",\"instance\":\"{}\",\"port\":{},\"stock_url\":\"{}\"}}",
                    json_escape(&self.instance),
                    self.port,
                    json_escape(&self.stock_url)
                ),
            );
        }
        match request.path.strip_prefix("/items/") {
            Some(item) if !item.is_empty() && !item.contains('/') => self.item(item),
            _ => Response::not_found(),
        }
    }

    /// Looks `item` up in the stock service and wraps its answer.
    fn item(&self, item: &str) -> Response {
        match http_get(&self.stock, &format!("/stock/{item}")) {
            Ok(stock) if stock.status == 200 => Response::json(
                200,
                format!(
                    "{{\"item\":\"{}\",\"instance\":\"{}\",\"stock\":{}}}",
                    json_escape(item),
                    json_escape(&self.instance),
                    stock.body
                ),
            ),
            Ok(stock) => Response::json(
                502,
                format!(
                    "{{\"error\":\"stock service answered {}\",\"item\":\"{}\"}}",
                    stock.status,
                    json_escape(item)
                ),
            ),
            Err(message) => Response::json(
                502,
                format!(
                    "{{\"error\":\"stock service unreachable: {}\",\"item\":\"{}\"}}",
                    json_escape(&message),
                    json_escape(item)
                ),
            ),
        }
    }
}

fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let port = match parse_port(&arguments) {
        Ok(port) => port,
        Err(message) => {
            eprintln!(
                "shop-api: {message}\nusage: STOCK_URL=http://127.0.0.1:PORT shop-api --port P"
            );
            return ExitCode::from(2);
        }
    };
    let Ok(stock_url) = std::env::var("STOCK_URL") else {
        eprintln!(
            "shop-api: STOCK_URL is not set; it must name the stock service, like http://127.0.0.1:4100"
        );
        return ExitCode::from(2);
    };
    // A trailing slash would otherwise produce `//stock/...` paths.
    let stock_url = stock_url.trim_end_matches('/').to_string();
    let stock = match parse_base_url(&stock_url) {
        Ok(stock) => stock,
        Err(message) => {
            eprintln!("shop-api: bad STOCK_URL: {message}");
            return ExitCode::from(2);
        }
    };
    let api = Api {
        port,
        instance: std::env::var("BERTH_INSTANCE").unwrap_or_default(),
        stock_url,
        stock,
    };
    let listener = match bind_loopback(port) {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("shop-api: cannot listen on 127.0.0.1:{port}: {error}");
            return ExitCode::from(1);
        }
    };
    say(&format!("shop-api listening on 127.0.0.1:{port}"));
    match serve(listener, Some("shop-api"), move |request| {
        api.handle(request)
    }) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("shop-api: {error}");
            ExitCode::from(1)
        }
    }
}
