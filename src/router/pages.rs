//! The small pages the router answers with itself: a service that is not there (naming
//! the instance, the service and its state) and a name nobody has (listing the routes).

use super::routes::{Route, RouterAddress};

/// Why a routed name is not served now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable {
    pub instance: String,
    pub service: String,
    /// `stopped`, `starting`, `failed`, `not started`, …
    pub state: String,
    /// What the instance's state says went wrong, or the proxy's own error.
    pub detail: Option<String>,
    /// 503 while the service may come back by itself or with `berth up`; 502 when it
    /// failed or answered wrong.
    pub status: u16,
}

impl Unavailable {
    /// States in which the service is on its way: the page reloads itself.
    fn coming(&self) -> bool {
        matches!(
            self.state.as_str(),
            "starting" | "waiting" | "setup" | "backoff" | "stopping"
        )
    }
}

pub fn unavailable(page: &Unavailable) -> String {
    let refresh = if page.coming() {
        "<meta http-equiv=\"refresh\" content=\"2\">"
    } else {
        ""
    };
    let detail = page
        .detail
        .as_deref()
        .map(|detail| format!("<pre>{}</pre>", escape(detail)))
        .unwrap_or_default();
    let hint = match page.state.as_str() {
        "failed" => format!(
            "<p><code>berth logs {0} --name {1}</code> shows why; <code>berth up --name {1}</code> starts it again.</p>",
            escape(&page.service),
            escape(&page.instance)
        ),
        state if page.coming() => {
            format!("<p>It is {}; this page reloads itself.</p>", escape(state))
        }
        _ => format!(
            "<p><code>berth up --name {}</code> starts it.</p>",
            escape(&page.instance)
        ),
    };
    document(
        &format!(
            "{} {} · {}",
            page.status,
            escape(&page.service),
            escape(&page.instance)
        ),
        refresh,
        &format!(
            "<h1>{} of {} is {}</h1>{detail}{hint}",
            code(&page.service),
            code(&page.instance),
            escape(&page.state)
        ),
    )
}

/// The 404 page: the name, and every name the router answers for.
pub fn unknown(host: &str, routes: &[Route], address: RouterAddress) -> String {
    let list = if routes.is_empty() {
        "<p>No instance has a port yet: <code>berth up</code> in a project starts one.</p>"
            .to_string()
    } else {
        let items: String = routes
            .iter()
            .map(|route| {
                let url = address.url(&route.host);
                format!(
                    "<li><a href=\"{0}/\">{0}</a> → {1} of {2} (127.0.0.1:{3})</li>",
                    escape(&url),
                    code(&route.service),
                    code(&route.instance),
                    route.port
                )
            })
            .collect();
        format!("<p>Routed names:</p><ul>{items}</ul>")
    };
    document(
        "404 · berth router",
        "",
        &format!("<h1>No berth instance answers to {}</h1>{list}", code(host)),
    )
}

fn document(title: &str, head: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title>{head}\
         <style>body{{font:15px/1.5 system-ui,sans-serif;margin:3em auto;max-width:46em;padding:0 1em}}\
         code,pre{{background:#f2f2f2;padding:.1em .3em}}</style></head>\
         <body>{body}<p><small>berth router</small></p></body></html>\n"
    )
}

fn code(text: &str) -> String {
    format!("<code>{}</code>", escape(text))
}

/// HTML-escapes text (names come from the ledger, details from programs' errors).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unavailable_page_names_instance_service_and_state() {
        let page = unavailable(&Unavailable {
            instance: "feat-a".to_string(),
            service: "web".to_string(),
            state: "failed".to_string(),
            detail: Some("exited with <status> 1".to_string()),
            status: 502,
        });
        assert!(
            page.contains("<code>web</code> of <code>feat-a</code> is failed"),
            "{page}"
        );
        assert!(page.contains("exited with &lt;status&gt; 1"), "{page}");
        assert!(!page.contains("refresh"), "{page}");
    }

    #[test]
    fn a_starting_service_s_page_reloads_itself() {
        let page = unavailable(&Unavailable {
            instance: "a".to_string(),
            service: "web".to_string(),
            state: "starting".to_string(),
            detail: None,
            status: 503,
        });
        assert!(page.contains("http-equiv=\"refresh\""), "{page}");
    }

    #[test]
    fn the_unknown_page_lists_the_routes() {
        let routes = vec![Route {
            host: "web.a.localhost".to_string(),
            instance: "a".to_string(),
            service: "web".to_string(),
            port: 4100,
        }];
        let page = unknown(
            "nope.localhost",
            &routes,
            RouterAddress {
                port: 7780,
                https: false,
            },
        );
        assert!(page.contains("No berth instance answers to <code>nope.localhost</code>"));
        assert!(
            page.contains("href=\"http://web.a.localhost:7780/\""),
            "{page}"
        );
    }
}
