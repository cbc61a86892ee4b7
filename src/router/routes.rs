//! Which name reaches which service: `SERVICE.INSTANCE.localhost` and `INSTANCE.localhost`,
//! drawn from the ledger's leases, and how a request's host is read. Pure: plain data in,
//! plain data out.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ledger::{LedgerData, LedgerEntry};

/// The domain every routed name ends in: browsers and curl resolve `*.localhost` to the
/// loopback address by themselves (RFC 6761), and keep cookies per name.
pub const DOMAIN: &str = "localhost";

/// The port `berth router start` listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 7780;

/// Where the router answers, as URLs name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RouterAddress {
    pub port: u16,
    pub https: bool,
}

impl RouterAddress {
    pub fn scheme(&self) -> &'static str {
        if self.https { "https" } else { "http" }
    }

    /// `http://HOST:PORT`, without the port where it is the scheme's own.
    pub fn url(&self, host: &str) -> String {
        let own = if self.https { 443 } else { 80 };
        if self.port == own {
            format!("{}://{host}", self.scheme())
        } else {
            format!("{}://{host}:{}", self.scheme(), self.port)
        }
    }
}

/// `SERVICE.INSTANCE.localhost`. Service names are lowercased: host names compare
/// without case, and Compose allows capitals in service names.
pub fn service_host(instance: &str, service: &str) -> String {
    format!("{}.{instance}.{DOMAIN}", service.to_ascii_lowercase())
}

/// `INSTANCE.localhost`: the instance's default service.
pub fn instance_host(instance: &str) -> String {
    format!("{instance}.{DOMAIN}")
}

/// Whether a service is shown with its router URL (in `url`, `status`, `up`): it speaks
/// HTTP (its direct URL is `http://` or `https://`), or it is what the bare instance name
/// reaches. A database's name is routed too, but a URL for it would only mislead.
pub fn has_router_url(direct_url: Option<&str>, service: &str, default: Option<&str>) -> bool {
    direct_url.is_some_and(|url| url.starts_with("http://") || url.starts_with("https://"))
        || default == Some(service)
}

/// One name the router answers for, and where it goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Route {
    pub host: String,
    pub instance: String,
    pub service: String,
    /// The service's host port (its first TCP port).
    pub port: u16,
}

/// The services of an instance that have a TCP port, in the ledger's order, each with its
/// first such port: what `SERVICE.INSTANCE.localhost` reaches.
pub fn routed_services(entry: &LedgerEntry) -> Vec<(String, u16)> {
    let mut services: Vec<(String, u16)> = Vec::new();
    for lease in &entry.leases {
        let tcp = !lease.port_name.ends_with("-udp") && !lease.port_name.ends_with("-sctp");
        if tcp && !services.iter().any(|(name, _)| *name == lease.service) {
            services.push((lease.service.clone(), lease.port));
        }
    }
    services
}

/// The service `INSTANCE.localhost` reaches: the one the instance names (from
/// `[router] default` or its first HTTP service) when it is routed, else the first routed.
pub fn default_service(services: &[(String, u16)], named: Option<&str>) -> Option<(String, u16)> {
    named
        .and_then(|named| services.iter().find(|(service, _)| service == named))
        .or_else(|| services.first())
        .cloned()
}

/// Every routed name on the machine, instance by instance; `defaults` gives the service
/// each instance names as its default (see [`default_service`]).
pub fn table(ledger: &LedgerData, defaults: &dyn Fn(&LedgerEntry) -> Option<String>) -> Vec<Route> {
    let mut routes = Vec::new();
    for entry in &ledger.instances {
        let services = routed_services(entry);
        if let Some((service, port)) = default_service(&services, defaults(entry).as_deref()) {
            routes.push(Route {
                host: instance_host(&entry.name),
                instance: entry.name.clone(),
                service,
                port,
            });
        }
        for (service, port) in services {
            routes.push(Route {
                host: service_host(&entry.name, &service),
                instance: entry.name.clone(),
                service,
                port,
            });
        }
    }
    routes
}

/// What a request's host names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostName {
    /// `INSTANCE.localhost`.
    Instance { instance: String },
    /// `SERVICE.INSTANCE.localhost` (`service` as written, lowercased).
    Service { instance: String, service: String },
    /// Anything else: a name under no instance, an address, another domain.
    Other { host: String },
}

/// Reads a `Host` header or `:authority` (`web.shop.localhost:7780`): without the port,
/// lowercased, without a trailing dot. Instance names hold no dot, so the instance is the
/// label just before `.localhost` and the service is everything before it.
pub fn parse_host(authority: &str) -> HostName {
    let host = strip_port(authority.trim())
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let Some(name) = host.strip_suffix(&format!(".{DOMAIN}")) else {
        return HostName::Other { host };
    };
    match name.rsplit_once('.') {
        _ if name.is_empty() => HostName::Other { host },
        None => HostName::Instance {
            instance: name.to_string(),
        },
        Some((service, instance)) if !service.is_empty() && !instance.is_empty() => {
            HostName::Service {
                instance: instance.to_string(),
                service: service.to_string(),
            }
        }
        Some(_) => HostName::Other { host },
    }
}

fn strip_port(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        // `[::1]:7780`: an IPv6 address, kept with its brackets.
        return match rest.find(']') {
            Some(end) => &authority[..end + 2],
            None => authority,
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => authority,
    }
}

/// The service of `services` a name picks: a service by its lowercased name, or the
/// instance's default.
pub fn pick(
    services: &[(String, u16)],
    service: Option<&str>,
    default: Option<&str>,
) -> Option<(String, u16)> {
    match service {
        Some(label) => services
            .iter()
            .find(|(name, _)| name.to_ascii_lowercase() == label)
            .cloned(),
        None => default_service(services, default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Lease;

    fn entry(name: &str, leases: &[(&str, &str, u16)]) -> LedgerEntry {
        LedgerEntry {
            name: name.to_string(),
            project: "shop".to_string(),
            root: format!("/work/{name}").into(),
            index: 0,
            port_offset: 0,
            leases: leases
                .iter()
                .map(|(service, port_name, port)| Lease {
                    service: service.to_string(),
                    port_name: port_name.to_string(),
                    port: *port,
                })
                .collect(),
            created_at: String::new(),
            started_at: None,
            git: None,
            shared: false,
            users: Vec::new(),
            env_files: Vec::new(),
        }
    }

    #[test]
    fn hosts_are_read_without_port_case_or_trailing_dot() {
        let cases = [
            (
                "web.shop.localhost:7780",
                HostName::Service {
                    instance: "shop".into(),
                    service: "web".into(),
                },
            ),
            (
                "WEB.Shop.LOCALHOST.",
                HostName::Service {
                    instance: "shop".into(),
                    service: "web".into(),
                },
            ),
            (
                "shop.localhost",
                HostName::Instance {
                    instance: "shop".into(),
                },
            ),
            (
                "a.b.shop.localhost",
                HostName::Service {
                    instance: "shop".into(),
                    service: "a.b".into(),
                },
            ),
            (
                "localhost:7780",
                HostName::Other {
                    host: "localhost".into(),
                },
            ),
            (
                "127.0.0.1:7780",
                HostName::Other {
                    host: "127.0.0.1".into(),
                },
            ),
            (
                "[::1]:7780",
                HostName::Other {
                    host: "[::1]".into(),
                },
            ),
            (
                "shop.example.com",
                HostName::Other {
                    host: "shop.example.com".into(),
                },
            ),
            (
                ".localhost",
                HostName::Other {
                    host: ".localhost".into(),
                },
            ),
            (
                "evil.localhost.example.com",
                HostName::Other {
                    host: "evil.localhost.example.com".into(),
                },
            ),
        ];
        for (authority, expected) in cases {
            assert_eq!(parse_host(authority), expected, "{authority}");
        }
    }

    #[test]
    fn every_service_with_a_tcp_port_is_routed_once_by_its_first_port() {
        let shop = entry(
            "shop",
            &[
                ("db", "default", 5432),
                ("web", "http", 3000),
                ("web", "admin", 3001),
                ("dns", "53-udp", 5353),
            ],
        );
        assert_eq!(
            routed_services(&shop),
            vec![("db".to_string(), 5432), ("web".to_string(), 3000)]
        );
    }

    #[test]
    fn the_bare_name_goes_to_the_named_default_else_the_first_service() {
        let services = vec![("db".to_string(), 5432), ("web".to_string(), 3000)];
        assert_eq!(
            default_service(&services, Some("web")),
            Some(("web".to_string(), 3000))
        );
        assert_eq!(
            default_service(&services, Some("gone")),
            Some(("db".to_string(), 5432))
        );
        assert_eq!(
            default_service(&services, None),
            Some(("db".to_string(), 5432))
        );
        assert_eq!(default_service(&[], Some("web")), None);
    }

    #[test]
    fn the_table_names_each_instance_and_each_service() {
        let ledger = LedgerData {
            version: 1,
            instances: vec![
                entry("a", &[("web", "default", 4100), ("Api", "default", 4101)]),
                entry("b", &[]),
            ],
        };
        let hosts: Vec<(String, u16)> = table(&ledger, &|_| Some("web".to_string()))
            .into_iter()
            .map(|route| (route.host, route.port))
            .collect();
        assert_eq!(
            hosts,
            vec![
                ("a.localhost".to_string(), 4100),
                ("web.a.localhost".to_string(), 4100),
                ("api.a.localhost".to_string(), 4101),
            ]
        );
    }

    #[test]
    fn urls_leave_out_the_scheme_s_own_port() {
        let http = RouterAddress {
            port: 80,
            https: false,
        };
        let https = RouterAddress {
            port: 7780,
            https: true,
        };
        assert_eq!(http.url("a.localhost"), "http://a.localhost");
        assert_eq!(https.url("a.localhost"), "https://a.localhost:7780");
    }
}
