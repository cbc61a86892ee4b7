//! The port planner: base ports, else the smallest free offset; auto ports. Pure: it asks
//! an injected [`PortProbe`] whether a port is free.

use std::collections::HashMap;
use std::fmt;

use crate::config::PortBase;

/// One port to place: a service's named port and its base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRequest {
    pub service: String,
    pub port_name: String,
    pub base: PortBase,
}

/// Who holds a port that berth cannot use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    Instance {
        name: String,
        service: String,
    },
    Process {
        pid: u32,
        command: String,
    },
    /// Published by a Docker container.
    Container {
        name: String,
    },
    /// Bound by something /proc does not show us (another network namespace, say).
    Unknown,
}

impl fmt::Display for Holder {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Holder::Instance { name, service } => {
                write!(formatter, "berth instance `{name}` (service `{service}`)")
            }
            Holder::Process { pid, command } => write!(formatter, "PID {pid} (`{command}`)"),
            Holder::Container { name } => write!(formatter, "Docker container `{name}`"),
            Holder::Unknown => formatter.write_str("another program (not visible in /proc)"),
        }
    }
}

/// Answers whether a host port is free for this instance.
pub trait PortProbe {
    fn check(&self, port: u16) -> Result<(), Holder>;
}

/// How to choose the offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetChoice {
    /// Base ports if all are free, else the smallest free multiple of the stride.
    Smallest,
    /// Base ports or fail (`--strict-ports`).
    Strict,
    /// Exactly this offset (`--port-offset`, `--instance N`, or the instance's lease).
    Exact(u32),
    /// `[ports] strategy = "hash"`: the slot this hash of the instance's name picks (never
    /// the base ports, which are the main work tree's), else the next free one.
    Hashed(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedPort {
    pub service: String,
    pub port_name: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortPlan {
    pub offset: u32,
    pub ports: Vec<PlannedPort>,
}

impl PortPlan {
    pub fn get(&self, service: &str, port_name: &str) -> Option<u16> {
        self.ports
            .iter()
            .find(|planned| planned.service == service && planned.port_name == port_name)
            .map(|planned| planned.port)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("port {port} for `{service}` is taken by {holder}")]
    Taken {
        port: u16,
        service: String,
        holder: Holder,
        offset: u32,
    },
    #[error("port {base} of `{service}` plus offset {offset} is {port}, outside 1024-65535")]
    OutOfRange {
        service: String,
        base: u16,
        offset: u32,
        /// Wide enough that no base and offset wrap around.
        port: u64,
    },
    #[error(
        "no offset (a multiple of {stride}) leaves every port free; last conflict: port {port} taken by {holder}"
    )]
    Exhausted {
        stride: u32,
        port: u16,
        holder: Holder,
    },
    #[error("no free port for `{service}` in the auto range {low}-{high}")]
    AutoExhausted {
        service: String,
        low: u16,
        high: u16,
    },
}

impl PortError {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            PortError::Taken { offset, .. } if *offset == 0 => {
                "stop that program, or drop --strict-ports so berth picks the next free offset".to_string()
            }
            PortError::Taken { .. } => "stop that program, or pick another offset with --port-offset; `berth down --release` forgets this instance's ports".to_string(),
            PortError::OutOfRange { base, .. } if *base < 1024 => format!(
                "berth plans host ports from 1024 up: publish port {base} as a port of 1024 or more (for Compose, `{}:{base}`)",
                u32::from(*base) + 8000
            ),
            PortError::OutOfRange { .. } => "use a smaller --port-offset or --instance".to_string(),
            PortError::Exhausted { .. } => "stop some instances (`berth ls`) or lower [ports] stride".to_string(),
            PortError::AutoExhausted { .. } => "widen [ports] range".to_string(),
        })
    }
}

/// Inputs to [`plan`] besides the requests.
pub struct PlanSettings<'a> {
    pub stride: u32,
    pub choice: OffsetChoice,
    pub auto_range: (u16, u16),
    /// Ports the kernel hands out on its own (`ip_local_port_range`); never chosen for auto.
    pub ephemeral: (u16, u16),
    /// Auto ports this instance held before, kept when still free.
    pub previous_auto: &'a HashMap<(String, String), u16>,
}

/// Places every requested port.
pub fn plan(
    requests: &[PortRequest],
    settings: &PlanSettings,
    probe: &dyn PortProbe,
) -> Result<PortPlan, PortError> {
    let offset = choose_offset(requests, settings, probe)?;
    let mut ports: Vec<PlannedPort> = Vec::with_capacity(requests.len());
    for request in requests {
        let port = match request.base {
            PortBase::Fixed(base) => shifted(request, base, offset)?,
            PortBase::Auto => auto_port(request, settings, probe, &ports)?,
        };
        ports.push(PlannedPort {
            service: request.service.clone(),
            port_name: request.port_name.clone(),
            port,
        });
    }
    Ok(PortPlan { offset, ports })
}

fn shifted(request: &PortRequest, base: u16, offset: u32) -> Result<u16, PortError> {
    let port = u64::from(base) + u64::from(offset);
    if !(1024..=65535).contains(&port) {
        return Err(PortError::OutOfRange {
            service: request.service.clone(),
            base,
            offset,
            port,
        });
    }
    Ok(port as u16)
}

/// The first fixed port taken at `offset`, with its holder.
fn first_conflict(
    requests: &[PortRequest],
    offset: u32,
    probe: &dyn PortProbe,
) -> Result<Option<(u16, String, Holder)>, PortError> {
    for request in requests {
        if let PortBase::Fixed(base) = request.base {
            let port = shifted(request, base, offset)?;
            if let Err(holder) = probe.check(port) {
                return Ok(Some((port, request.service.clone(), holder)));
            }
        }
    }
    Ok(None)
}

fn choose_offset(
    requests: &[PortRequest],
    settings: &PlanSettings,
    probe: &dyn PortProbe,
) -> Result<u32, PortError> {
    let taken = |port, service, holder, offset| PortError::Taken {
        port,
        service,
        holder,
        offset,
    };
    match settings.choice {
        OffsetChoice::Exact(offset) => match first_conflict(requests, offset, probe)? {
            None => Ok(offset),
            Some((port, service, holder)) => Err(taken(port, service, holder, offset)),
        },
        OffsetChoice::Strict => match first_conflict(requests, 0, probe)? {
            None => Ok(0),
            Some((port, service, holder)) => Err(taken(port, service, holder, 0)),
        },
        OffsetChoice::Smallest => {
            let Some(highest) = highest_fixed(requests) else {
                return Ok(0);
            };
            let slots = (0..).take_while(|slot| highest + slot * settings.stride <= 65535);
            first_free_slot(requests, settings.stride, slots, probe)
        }
        OffsetChoice::Hashed(hash) => {
            let Some(first) = hashed_offset(requests, settings.stride, hash) else {
                return Ok(0);
            };
            let count = hash_slot_count(requests, settings.stride);
            let first = first / settings.stride;
            // From the hashed slot up, then round from slot 1: every slot but the base.
            let slots = (0..count).map(|step| 1 + (first - 1 + step) % count);
            first_free_slot(requests, settings.stride, slots, probe)
        }
    }
}

/// The highest fixed base port, if any port is fixed.
fn highest_fixed(requests: &[PortRequest]) -> Option<u32> {
    requests
        .iter()
        .filter_map(|request| match request.base {
            PortBase::Fixed(base) => Some(u32::from(base)),
            PortBase::Auto => None,
        })
        .max()
}

/// How many slots past the base ports fit under 65535.
fn hash_slot_count(requests: &[PortRequest], stride: u32) -> u32 {
    highest_fixed(requests).map_or(0, |highest| (65535 - highest) / stride)
}

/// The offset `hash` picks under `[ports] strategy = "hash"`: slot 1 + hash mod the
/// slots past the base ports. `None` when no port is fixed, or none fits past the base.
pub fn hashed_offset(requests: &[PortRequest], stride: u32, hash: u64) -> Option<u32> {
    let count = hash_slot_count(requests, stride);
    (count > 0).then(|| (1 + (hash % u64::from(count)) as u32) * stride)
}

/// The same on every machine: the first eight bytes of the SHA-256 of the name.
pub fn name_hash(name: &str) -> u64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(name.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(bytes)
}

/// The offset of the first of `slots` (multiples of `stride`) where every fixed port
/// is free.
fn first_free_slot(
    requests: &[PortRequest],
    stride: u32,
    slots: impl Iterator<Item = u32>,
    probe: &dyn PortProbe,
) -> Result<u32, PortError> {
    let mut last = None;
    for slot in slots {
        let offset = slot * stride;
        match first_conflict(requests, offset, probe)? {
            None => return Ok(offset),
            Some(conflict) => last = Some(conflict),
        }
    }
    let (port, _, holder) = last.unwrap_or((0, String::new(), Holder::Unknown));
    Err(PortError::Exhausted {
        stride,
        port,
        holder,
    })
}

fn auto_port(
    request: &PortRequest,
    settings: &PlanSettings,
    probe: &dyn PortProbe,
    chosen: &[PlannedPort],
) -> Result<u16, PortError> {
    let usable = |port: u16| {
        !(settings.ephemeral.0..=settings.ephemeral.1).contains(&port)
            && !chosen.iter().any(|planned| planned.port == port)
            && probe.check(port).is_ok()
    };
    let key = (request.service.clone(), request.port_name.clone());
    if let Some(previous) = settings.previous_auto.get(&key)
        && usable(*previous)
    {
        return Ok(*previous);
    }
    let (low, high) = settings.auto_range;
    (low..=high)
        .find(|port| usable(*port))
        .ok_or(PortError::AutoExhausted {
            service: request.service.clone(),
            low,
            high,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    struct Taken(HashSet<u16>);
    impl PortProbe for Taken {
        fn check(&self, port: u16) -> Result<(), Holder> {
            if self.0.contains(&port) {
                Err(Holder::Process {
                    pid: 42,
                    command: "nc -l".to_string(),
                })
            } else {
                Ok(())
            }
        }
    }

    fn fixed(service: &str, port: u16) -> PortRequest {
        PortRequest {
            service: service.to_string(),
            port_name: "default".to_string(),
            base: PortBase::Fixed(port),
        }
    }

    fn auto(service: &str) -> PortRequest {
        PortRequest {
            service: service.to_string(),
            port_name: "default".to_string(),
            base: PortBase::Auto,
        }
    }

    fn run(
        requests: &[PortRequest],
        choice: OffsetChoice,
        taken: &[u16],
    ) -> Result<PortPlan, PortError> {
        let previous = HashMap::new();
        let settings = PlanSettings {
            stride: 100,
            choice,
            auto_range: (20000, 20005),
            ephemeral: (20002, 20003),
            previous_auto: &previous,
        };
        plan(requests, &settings, &Taken(taken.iter().copied().collect()))
    }

    #[test]
    fn offsets_are_chosen_as_specified() {
        let requests = [fixed("api", 3000), fixed("db", 5432)];
        let cases: &[(OffsetChoice, &[u16], Option<u32>)] = &[
            (OffsetChoice::Smallest, &[], Some(0)),
            (OffsetChoice::Smallest, &[5432], Some(100)),
            (OffsetChoice::Smallest, &[5432, 3100], Some(200)),
            (OffsetChoice::Strict, &[], Some(0)),
            (OffsetChoice::Strict, &[3000], None),
            (OffsetChoice::Exact(700), &[], Some(700)),
            (OffsetChoice::Exact(700), &[3700], None),
        ];
        for (choice, taken, expected) in cases {
            let result = run(&requests, *choice, taken);
            assert_eq!(
                result.as_ref().ok().map(|plan| plan.offset),
                *expected,
                "{choice:?} {taken:?}: {result:?}"
            );
        }
        let plan = run(&requests, OffsetChoice::Smallest, &[5432]).unwrap();
        assert_eq!(plan.get("api", "default"), Some(3100));
        assert_eq!(plan.get("db", "default"), Some(5532));
    }

    #[test]
    fn a_hashed_offset_skips_the_base_and_moves_past_taken_slots() {
        // 3000 and 5432 at stride 100: 601 slots past the base (5432 + 601 × 100 ≤ 65535).
        let requests = [fixed("api", 3000), fixed("db", 5432)];
        assert_eq!(hashed_offset(&requests, 100, 0), Some(100));
        assert_eq!(hashed_offset(&requests, 100, 600), Some(60100));
        assert_eq!(hashed_offset(&requests, 100, 601), Some(100));
        let hash = name_hash("feature-auth");
        let first = hashed_offset(&requests, 100, hash).unwrap();
        assert_eq!(
            name_hash("feature-auth"),
            hash,
            "the same name, the same hash"
        );
        assert_ne!(name_hash("feature-billing"), hash);
        let plan = run(&requests, OffsetChoice::Hashed(hash), &[]).unwrap();
        assert_eq!(plan.offset, first);
        // Its slot taken: the next one, never the base ports.
        let taken = [3000 + first as u16];
        let plan = run(&requests, OffsetChoice::Hashed(hash), &taken).unwrap();
        assert_eq!(plan.offset, if first == 60100 { 100 } else { first + 100 });
        let last = run(&requests, OffsetChoice::Hashed(600), &[63100]).unwrap();
        assert_eq!(
            last.offset, 100,
            "past the last slot it goes round to slot 1"
        );
        // Auto ports only: nothing to offset.
        assert_eq!(hashed_offset(&[auto("api")], 100, hash), None);
        assert_eq!(
            run(&[auto("api")], OffsetChoice::Hashed(hash), &[])
                .unwrap()
                .offset,
            0
        );
    }

    #[test]
    fn a_taken_port_names_its_holder() {
        let error = run(&[fixed("api", 3000)], OffsetChoice::Strict, &[3000]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "port 3000 for `api` is taken by PID 42 (`nc -l`)"
        );
    }

    #[test]
    fn offsets_never_wrap_past_65535() {
        let error = run(&[fixed("api", 65500)], OffsetChoice::Exact(100), &[]).unwrap_err();
        assert!(matches!(error, PortError::OutOfRange { port: 65600, .. }));
        let error = run(&[fixed("api", 65500)], OffsetChoice::Smallest, &[65500]).unwrap_err();
        assert!(matches!(error, PortError::Exhausted { .. }));
    }

    #[test]
    fn auto_ports_skip_taken_chosen_and_ephemeral_ports() {
        let plan = run(
            &[auto("a"), auto("b"), auto("c")],
            OffsetChoice::Smallest,
            &[20000],
        )
        .unwrap();
        let ports: Vec<u16> = plan.ports.iter().map(|planned| planned.port).collect();
        assert_eq!(ports, vec![20001, 20004, 20005]);
        let error = run(
            &[auto("a"), auto("b"), auto("c"), auto("d")],
            OffsetChoice::Smallest,
            &[20000],
        )
        .unwrap_err();
        assert!(matches!(error, PortError::AutoExhausted { .. }));
    }
}
