//! Dependency order: services grouped in waves, each wave depending only on earlier ones.

use indexmap::IndexMap;

/// Groups `graph` (service → its dependencies) into start waves. On a cycle, returns the
/// services on it, first one repeated at the end.
pub fn start_order(graph: &IndexMap<String, Vec<String>>) -> Result<Vec<Vec<String>>, Vec<String>> {
    // Kahn's algorithm by levels, linear in services and edges: a service's count of
    // unplaced dependencies drops as each wave is placed; at zero it joins the next wave.
    let mut waiting: Vec<usize> = Vec::with_capacity(graph.len());
    let mut dependants: Vec<Vec<usize>> = vec![Vec::new(); graph.len()];
    for (index, dependencies) in graph.values().enumerate() {
        let mut count = 0;
        for dependency in dependencies {
            if let Some(position) = graph.get_index_of(dependency) {
                dependants[position].push(index);
                count += 1;
            }
        }
        waiting.push(count);
    }
    let mut current: Vec<usize> = (0..graph.len())
        .filter(|index| waiting[*index] == 0)
        .collect();
    let mut placed = vec![false; graph.len()];
    let mut placed_count = 0;
    let mut waves: Vec<Vec<String>> = Vec::new();
    while !current.is_empty() {
        let mut next = Vec::new();
        for &index in &current {
            placed[index] = true;
            for &dependant in &dependants[index] {
                waiting[dependant] -= 1;
                if waiting[dependant] == 0 {
                    next.push(dependant);
                }
            }
        }
        placed_count += current.len();
        // Within a wave, services keep the configuration's order.
        next.sort_unstable();
        waves.push(
            current
                .iter()
                .map(|index| graph.get_index(*index).expect("index").0.clone())
                .collect(),
        );
        current = next;
    }
    if placed_count < graph.len() {
        let placed: Vec<&String> = graph
            .keys()
            .enumerate()
            .filter(|(index, _)| placed[*index])
            .map(|(_, name)| name)
            .collect();
        return Err(find_cycle(graph, &placed));
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

    #[test]
    fn a_diamond_with_repeated_and_unknown_dependencies_keeps_the_configs_order() {
        let order = start_order(&graph(&[
            ("web", &["api", "cache", "api"]),
            ("cache", &["elsewhere"]),
            ("api", &["db"]),
            ("db", &[]),
        ]))
        .unwrap();
        assert_eq!(order, vec![vec!["cache", "db"], vec!["api"], vec!["web"]]);
    }

    #[test]
    fn a_self_dependency_is_a_cycle() {
        let cycle = start_order(&graph(&[("ok", &[]), ("a", &["a"])])).unwrap_err();
        assert_eq!(cycle, vec!["a", "a"]);
    }

    #[test]
    fn a_long_chain_is_one_service_per_wave() {
        let names: Vec<String> = (0..3000).map(|index| format!("s{index}")).collect();
        let chain: IndexMap<String, Vec<String>> = names
            .iter()
            .enumerate()
            .map(|(index, name)| {
                let before = index.checked_sub(1).map(|i| names[i].clone());
                (name.clone(), before.into_iter().collect())
            })
            .collect();
        let order = start_order(&chain).unwrap();
        assert_eq!(order.len(), 3000);
        assert!(
            order
                .iter()
                .zip(&names)
                .all(|(wave, name)| wave == &vec![name.clone()])
        );
    }
}
