//! Compose `ports:` entries: every syntax the Compose tools accept or print, parsed into
//! one mapping per published port, and written back with the planned host port. Pure.
//!
//! Short syntax: `"80"`, `"8080:80"`, `"127.0.0.1:8080:80"`, `"127.0.0.1::80"`,
//! `"9000-9002:9000-9002"`, `"53/udp"`, `"[::1]:8080:80"` and the unbracketed `"::1:8080:80/tcp"`
//! that Compose v1's `config` prints. Long syntax: a map with `target`, `published`,
//! `protocol`, `host_ip`, `mode` and (Compose v2) `name`, `app_protocol`.

use std::net::IpAddr;

use serde_json::{Map, Value};

/// One container port published on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    /// The host port as written; `None` when Compose would pick a random one.
    pub published: Option<u16>,
    pub target: u16,
    pub protocol: String,
    /// Long-syntax keys berth keeps as they are (`name`, `app_protocol`).
    pub extra: Map<String, Value>,
}

impl PortMapping {
    /// The name of this port in templates and `berth port`: the container port, with the
    /// protocol appended when it is not TCP (`{{ port.db.5432 }}`, `{{ port.dns.53-udp }}`).
    pub fn name(&self) -> String {
        if self.protocol == "tcp" {
            self.target.to_string()
        } else {
            format!("{}-{}", self.target, self.protocol)
        }
    }

    /// The entry for the per-instance file: short syntax, which both Compose v1 and v2
    /// read with a host IP; long syntax only when the entry carries keys that only the
    /// long syntax can hold (written by Compose v2, which reads `host_ip`).
    pub fn render(&self, bind: IpAddr, host_port: u16) -> Value {
        if self.extra.is_empty() {
            let ip = match bind {
                IpAddr::V4(ip) => ip.to_string(),
                IpAddr::V6(ip) => format!("[{ip}]"),
            };
            return Value::String(format!(
                "{ip}:{host_port}:{}/{}",
                self.target, self.protocol
            ));
        }
        let mut entry = self.extra.clone();
        entry.insert("target".into(), Value::from(self.target));
        entry.insert("published".into(), Value::String(host_port.to_string()));
        entry.insert("host_ip".into(), Value::String(bind.to_string()));
        entry.insert("protocol".into(), Value::String(self.protocol.clone()));
        Value::Object(entry)
    }
}

/// Why an entry could not be understood; the caller adds the service and the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PortSyntaxError(pub String);

fn error(message: impl Into<String>) -> PortSyntaxError {
    PortSyntaxError(message.into())
}

/// Parses one `ports:` entry into one mapping per published port (ranges expanded).
pub fn parse_entry(entry: &Value) -> Result<Vec<PortMapping>, PortSyntaxError> {
    match entry {
        Value::String(text) => parse_short(text),
        Value::Number(number) => parse_short(&number.to_string()),
        Value::Object(map) => parse_long(map),
        other => Err(error(format!(
            "a port must be a string or a map, not `{other}`"
        ))),
    }
}

/// The text of an entry for error messages.
pub fn entry_text(entry: &Value) -> String {
    match entry {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn parse_short(text: &str) -> Result<Vec<PortMapping>, PortSyntaxError> {
    let (addresses, protocol) = match text.rsplit_once('/') {
        Some((addresses, protocol)) => (addresses, protocol),
        None => (text, "tcp"),
    };
    let protocol = parse_protocol(protocol)?;
    let (rest, target) = match addresses.rsplit_once(':') {
        Some((rest, target)) => (Some(rest), target),
        None => (None, addresses),
    };
    let (host_ip, published) = match rest {
        None => (None, None),
        Some(rest) => match rest.rsplit_once(':') {
            Some((ip, published)) => (Some(ip), Some(published)),
            None => (None, Some(rest)),
        },
    };
    if let Some(ip) = host_ip {
        parse_ip(ip)?;
    }
    let target = parse_range(target, "container port")?;
    let published = match published {
        None | Some("") => None,
        Some(published) => Some(parse_range(published, "host port")?),
    };
    expand(published, target, &protocol, &Map::new())
}

fn parse_long(map: &Map<String, Value>) -> Result<Vec<PortMapping>, PortSyntaxError> {
    let mut extra = Map::new();
    let mut target = None;
    let mut published = None;
    let mut protocol = "tcp".to_string();
    for (key, value) in map {
        let text = match value {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            Value::Null => None,
            other => {
                return Err(error(format!(
                    "`{key}` must be a string or number, not `{other}`"
                )));
            }
        };
        match (key.as_str(), text) {
            ("target", Some(text)) => target = Some(parse_range(&text, "container port")?),
            ("published", Some(text)) if !text.is_empty() => {
                published = Some(parse_range(&text, "host port")?);
            }
            ("protocol", Some(text)) => protocol = parse_protocol(&text)?,
            ("host_ip", Some(text)) => {
                parse_ip(&text)?;
            }
            // Meaningful only to a swarm; every published port here is a plain binding.
            ("mode", _) | ("published" | "host_ip" | "protocol", None) => {}
            ("published", Some(_)) => {}
            (_, _) => {
                extra.insert(key.clone(), value.clone());
            }
        }
    }
    let target = target.ok_or_else(|| error("the long syntax needs `target`"))?;
    expand(published, target, &protocol, &extra)
}

fn expand(
    published: Option<(u16, u16)>,
    target: (u16, u16),
    protocol: &str,
    extra: &Map<String, Value>,
) -> Result<Vec<PortMapping>, PortSyntaxError> {
    let count = target.1 - target.0;
    if let Some((low, high)) = published
        && high - low != count
    {
        return Err(error(format!(
            "host range {low}-{high} and container range {}-{} differ in length; berth plans \
             one host port per container port",
            target.0, target.1
        )));
    }
    Ok((0..=count)
        .map(|step| PortMapping {
            published: published.map(|(low, _)| low + step),
            target: target.0 + step,
            protocol: protocol.to_string(),
            extra: extra.clone(),
        })
        .collect())
}

fn parse_protocol(text: &str) -> Result<String, PortSyntaxError> {
    let protocol = text.to_ascii_lowercase();
    if matches!(protocol.as_str(), "tcp" | "udp" | "sctp") {
        Ok(protocol)
    } else {
        Err(error(format!(
            "unknown protocol `{text}` (tcp, udp or sctp)"
        )))
    }
}

fn parse_ip(text: &str) -> Result<IpAddr, PortSyntaxError> {
    let bare = text
        .strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(text);
    bare.parse()
        .map_err(|_| error(format!("`{text}` is not an IP address")))
}

fn parse_range(text: &str, what: &str) -> Result<(u16, u16), PortSyntaxError> {
    let number = |part: &str| {
        part.trim()
            .parse::<u16>()
            .ok()
            .filter(|port| *port > 0)
            .ok_or_else(|| error(format!("{what} `{text}` is not a port number (1-65535)")))
    };
    match text.split_once('-') {
        Some((low, high)) => {
            let (low, high) = (number(low)?, number(high)?);
            if low > high {
                return Err(error(format!("{what} range `{text}` runs backwards")));
            }
            Ok((low, high))
        }
        None => {
            let port = number(text)?;
            Ok((port, port))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// (published, target, protocol) of each mapping.
    type Brief<'a> = (Option<u16>, u16, &'a str);

    fn short(mappings: &[PortMapping]) -> Vec<Brief<'_>> {
        mappings
            .iter()
            .map(|m| (m.published, m.target, m.protocol.as_str()))
            .collect()
    }

    #[test]
    fn short_syntax_in_every_form() {
        let cases: &[(&str, &[Brief])] = &[
            ("80", &[(None, 80, "tcp")]),
            ("8080:80", &[(Some(8080), 80, "tcp")]),
            ("127.0.0.1:8081:81", &[(Some(8081), 81, "tcp")]),
            ("127.0.0.1:8081:81/tcp", &[(Some(8081), 81, "tcp")]),
            ("127.0.0.1::80", &[(None, 80, "tcp")]),
            ("5353:53/udp", &[(Some(5353), 53, "udp")]),
            ("53/UDP", &[(None, 53, "udp")]),
            ("[::1]:8082:82", &[(Some(8082), 82, "tcp")]),
            ("::1:8082:82/tcp", &[(Some(8082), 82, "tcp")]),
            ("0.0.0.0:7000:70/sctp", &[(Some(7000), 70, "sctp")]),
            (
                "9000-9002:9000-9002",
                &[
                    (Some(9000), 9000, "tcp"),
                    (Some(9001), 9001, "tcp"),
                    (Some(9002), 9002, "tcp"),
                ],
            ),
            ("3000-3001", &[(None, 3000, "tcp"), (None, 3001, "tcp")]),
        ];
        for (text, expected) in cases {
            let parsed = parse_entry(&json!(text)).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(short(&parsed), *expected, "{text}");
        }
        assert_eq!(
            short(&parse_entry(&json!(8080)).unwrap()),
            [(None, 8080, "tcp")]
        );
    }

    #[test]
    fn long_syntax_as_v1_and_v2_print_it() {
        let v1 = json!({"published": 8080, "target": 80});
        assert_eq!(short(&parse_entry(&v1).unwrap()), [(Some(8080), 80, "tcp")]);
        let v2 = json!({"mode": "ingress", "host_ip": "127.0.0.1", "target": 81,
                        "published": "8081", "protocol": "udp"});
        assert_eq!(short(&parse_entry(&v2).unwrap()), [(Some(8081), 81, "udp")]);
        let unpublished = json!({"mode": "ingress", "target": 80, "protocol": "tcp"});
        assert_eq!(
            short(&parse_entry(&unpublished).unwrap()),
            [(None, 80, "tcp")]
        );
        let range = json!({"target": "9000-9001", "published": "9100-9101"});
        assert_eq!(
            short(&parse_entry(&range).unwrap()),
            [(Some(9100), 9000, "tcp"), (Some(9101), 9001, "tcp")]
        );
        let named =
            json!({"target": 80, "published": "8080", "name": "web", "app_protocol": "http"});
        let parsed = parse_entry(&named).unwrap();
        assert_eq!(parsed[0].extra.len(), 2);
    }

    #[test]
    fn what_berth_cannot_plan_is_an_error() {
        for bad in [
            "abc",
            "8080:http",
            "70000:80",
            "0:80",
            "8000-8010:80",
            "9002-9000:80",
            "1.2.3:8080:80",
            "8080:80/icmp",
            "",
        ] {
            assert!(parse_entry(&json!(bad)).is_err(), "{bad} should fail");
        }
        assert!(parse_entry(&json!({"published": 80})).is_err());
        assert!(parse_entry(&json!(["80"])).is_err());
    }

    #[test]
    fn renders_short_syntax_bound_to_the_chosen_address() {
        let mapping = &parse_entry(&json!("0.0.0.0:5353:53/udp")).unwrap()[0];
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            mapping.render(local, 15353),
            json!("127.0.0.1:15353:53/udp")
        );
        assert_eq!(mapping.name(), "53-udp");
        let v6: IpAddr = "::1".parse().unwrap();
        assert_eq!(mapping.render(v6, 15353), json!("[::1]:15353:53/udp"));
        let named =
            &parse_entry(&json!({"target": 80, "published": "8080", "name": "web"})).unwrap()[0];
        assert_eq!(
            named.render(local, 18080),
            json!({"name": "web", "target": 80, "published": "18080",
                   "host_ip": "127.0.0.1", "protocol": "tcp"})
        );
    }
}
