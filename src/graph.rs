//! Dependency order: services grouped in waves, each wave depending only on earlier ones.

use indexmap::IndexMap;

/// Groups `graph` (service → its dependencies) into start waves. On a cycle, returns the
/// services on it, first one repeated at the end.
pub fn start_order(graph: &IndexMap<String, Vec<String>>) -> Result<Vec<Vec<String>>, Vec<String>> {
    let mut placed: Vec<&String> = Vec::new();
    let mut waves: Vec<Vec<String>> = Vec::new();
    while placed.len() < graph.len() {
        let wave: Vec<String> = graph
            .iter()
            .filter(|(name, _)| !placed.contains(name))
            .filter(|(_, dependencies)| {
                dependencies.iter().all(|dependency| {
                    placed.contains(&dependency) || !graph.contains_key(dependency)
                })
            })
            .map(|(name, _)| name.clone())
            .collect();
        if wave.is_empty() {
            return Err(find_cycle(graph, &placed));
        }
        for name in &wave {
            if let Some((key, _)) = graph.get_key_value(name) {
                placed.push(key);
            }
        }
        waves.push(wave);
    }
    Ok(waves)
}

fn find_cycle(graph: &IndexMap<String, Vec<String>>, placed: &[&String]) -> Vec<String> {
    // Every unplaced service has an unplaced dependency, so walking dependencies from
    // any of them must revisit a service: that loop is the cycle.
    let Some(start) = graph.keys().find(|name| !placed.contains(name)) else {
        return Vec::new();
    };
    let mut path = vec![start.clone()];
    loop {
        let current = &path[path.len() - 1];
        let Some(next) = graph[current]
            .iter()
            .find(|dependency| !placed.contains(dependency) && graph.contains_key(*dependency))
        else {
            return path;
        };
        if let Some(position) = path.iter().position(|name| name == next) {
            let mut cycle = path[position..].to_vec();
            cycle.push(next.clone());
            return cycle;
        }
        path.push(next.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &[&str])]) -> IndexMap<String, Vec<String>> {
        edges
            .iter()
            .map(|(name, deps)| {
                (
                    name.to_string(),
                    deps.iter().map(|d| d.to_string()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn waves_follow_dependencies() {
        let order = start_order(&graph(&[
            ("worker", &["api"]),
            ("api", &["db"]),
            ("db", &[]),
            ("cache", &[]),
        ]))
        .unwrap();
        assert_eq!(
            order,
            vec![vec!["db", "cache"], vec!["api"], vec!["worker"]]
        );
    }

    #[test]
    fn cycles_are_reported() {
        let cycle =
            start_order(&graph(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"])])).unwrap_err();
        assert_eq!(cycle, vec!["a", "b", "c", "a"]);
    }
}
