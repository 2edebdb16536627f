//! `caxton memory migration-readiness`: the operators' guide's report on
//! whether one box's memory is nearing the limits where a shared primary
//! (`[memory] primary_url`, a libsql server) is worth it. Read from a
//! running server's memory stats against the guide's thresholds.

use serde_json::{Value, json};

use super::client::{ApiClient, ServerArgs};
use super::output;

/// The guide's embedded-backend limits and migration triggers.
const MAX_ENTITIES: f64 = 100_000.0;
const MAX_RELATIONS: f64 = 500_000.0;
const MAX_STORAGE_BYTES: f64 = 2048.0 * 1_048_576.0;
const MAX_SEARCH_P99_MS: f64 = 100.0;
const MIN_CACHE_HIT_RATE: f64 = 0.80;
const MAX_GROWTH_BYTES_PER_DAY: f64 = 100.0 * 1_048_576.0;
/// Past this share of a limit an item is a warning.
const WARN_AT: f64 = 0.80;

/// One line of the report.
struct Item {
    name: &'static str,
    shown: String,
    /// `OK`, `WARN` (past 80 % of a limit) or `OVER`.
    status: &'static str,
    value: Value,
    limit: f64,
}

fn share(name: &'static str, value: f64, limit: f64, shown: String) -> Item {
    let ratio = value / limit;
    Item {
        name,
        shown: format!("{shown} ({:.0}%)", ratio * 100.0),
        status: if ratio >= 1.0 {
            "OVER"
        } else if ratio >= WARN_AT {
            "WARN"
        } else {
            "OK"
        },
        value: json!(value),
        limit,
    }
}

fn mb(bytes: f64) -> String {
    if bytes >= 1_073_741_824.0 {
        format!("{:.1}GB", bytes / 1_073_741_824.0)
    } else {
        format!("{:.0}MB", bytes / 1_048_576.0)
    }
}

/// The report from `/api/v1/memory/stats`, as JSON; `ready` is true when
/// any item is over its limit.
pub fn report(stats: &Value) -> Value {
    let number = |key: &str| stats[key].as_f64().unwrap_or(0.0);
    let (entities, relations, bytes) = (
        number("entities"),
        number("relations"),
        number("database_bytes"),
    );
    let mut items = vec![
        share(
            "entities",
            entities,
            MAX_ENTITIES,
            format!("{entities:.0} / {MAX_ENTITIES:.0}"),
        ),
        share(
            "relations",
            relations,
            MAX_RELATIONS,
            format!("{relations:.0} / {MAX_RELATIONS:.0}"),
        ),
        share(
            "storage",
            bytes,
            MAX_STORAGE_BYTES,
            format!("{} / {}", mb(bytes), mb(MAX_STORAGE_BYTES)),
        ),
    ];
    if let Some(p99) = stats["search_p99_ms_at_most"].as_f64() {
        items.push(share(
            "search_p99",
            p99,
            MAX_SEARCH_P99_MS,
            format!("at most {p99:.0}ms / {MAX_SEARCH_P99_MS:.0}ms"),
        ));
    }
    if let Some(rate) = stats["embedding_cache_hit_rate"].as_f64() {
        items.push(Item {
            name: "cache_hit_rate",
            shown: format!(
                "{:.0}% / at least {:.0}%",
                rate * 100.0,
                MIN_CACHE_HIT_RATE * 100.0
            ),
            status: if rate < MIN_CACHE_HIT_RATE {
                "WARN"
            } else {
                "OK"
            },
            value: json!(rate),
            limit: MIN_CACHE_HIT_RATE,
        });
    }
    // Growth: entities created in the last week (or since the store began,
    // if younger), at the store's average bytes per entity.
    let age_days =
        (stats["store_age_seconds"].as_f64().unwrap_or(0.0) / 86_400.0).clamp(1.0 / 24.0, 7.0);
    let per_entity = if entities > 0.0 {
        bytes / entities
    } else {
        0.0
    };
    let growth = number("entities_created_last_7d") / age_days * per_entity;
    items.push(share(
        "growth_per_day",
        growth,
        MAX_GROWTH_BYTES_PER_DAY,
        format!("{}/day / {}/day", mb(growth), mb(MAX_GROWTH_BYTES_PER_DAY)),
    ));
    // The first limit reached at this growth rate.
    let days_to_limit = (growth > 0.0).then(|| {
        let entity_growth = growth / per_entity.max(1.0);
        ((MAX_STORAGE_BYTES - bytes) / growth)
            .min((MAX_ENTITIES - entities) / entity_growth)
            .max(0.0)
    });
    let over = items.iter().any(|i| i.status == "OVER");
    let warn = items.iter().any(|i| i.status == "WARN");
    let recommendation = match (stats["primary"].as_str(), over, warn) {
        (Some(_), _, _) => {
            "memory is already shared through a primary; watch its server's capacity instead"
        }
        (None, true, _) => {
            "move memory to a shared primary: set [memory] primary_url to a libsql server (sqld)"
        }
        (None, false, true) => "plan the move to a shared primary; it is near a limit",
        (None, false, false) => "continue monitoring",
    };
    json!({
        "ready": over,
        "status": if over { "ready for migration" } else { "not ready for migration" },
        "items": items.iter().map(|i| json!({
            "name": i.name, "value": i.value, "limit": i.limit, "status": i.status, "shown": i.shown,
        })).collect::<Vec<_>>(),
        "days_to_limits": days_to_limit,
        "recommendation": recommendation,
        "primary": stats["primary"],
    })
}

pub async fn migration_readiness(server: &ServerArgs, detailed: bool) -> anyhow::Result<()> {
    let stats = ApiClient::new(server)
        .get_json("/api/v1/memory/stats")
        .await?;
    let report = report(&stats);
    output::print(server.output, &report, |report| {
        println!("=== MIGRATION READINESS REPORT ===");
        for item in report["items"].as_array().into_iter().flatten() {
            let label = match item["name"].as_str().unwrap_or_default() {
                "entities" => "Entity count",
                "relations" => "Relation count",
                "storage" => "Storage size",
                "search_p99" => "Search latency P99",
                "cache_hit_rate" => "Cache hit rate",
                _ => "Growth rate",
            };
            let is_detail = matches!(item["name"].as_str(), Some("relations"));
            if detailed || !is_detail {
                println!(
                    "{label}: {} - {}",
                    output::plain(&item["shown"]),
                    output::plain(&item["status"])
                );
            }
        }
        println!();
        println!(
            "STATUS: {}",
            capitalised(report["status"].as_str().unwrap_or_default())
        );
        match report["days_to_limits"].as_f64() {
            Some(days) if days < 60.0 => {
                println!("TIME TO LIMITS: ~{days:.0} days at current growth")
            }
            Some(days) => println!(
                "TIME TO LIMITS: ~{:.0} months at current growth",
                days / 30.0
            ),
            None => println!("TIME TO LIMITS: not growing"),
        }
        println!(
            "RECOMMENDATION: {}",
            output::plain(&report["recommendation"])
        );
        if detailed {
            println!(
                "(limits: the operators' guide's embedded backend: {MAX_ENTITIES:.0} entities, {MAX_RELATIONS:.0} relations, {}, search p99 {MAX_SEARCH_P99_MS:.0}ms, cache hit rate {:.0}%, growth {}/day)",
                mb(MAX_STORAGE_BYTES),
                MIN_CACHE_HIT_RATE * 100.0,
                mb(MAX_GROWTH_BYTES_PER_DAY)
            );
        }
    });
    Ok(())
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_past_a_limit_is_ready_and_a_young_small_one_is_not() {
        let small = json!({
            "entities": 1000, "relations": 10, "database_bytes": 50_000_000,
            "search_p99_ms_at_most": 25.0, "embedding_cache_hit_rate": 0.9,
            "entities_created_last_7d": 700, "store_age_seconds": 7 * 86_400, "primary": null,
        });
        let small = report(&small);
        assert_eq!(small["ready"], false);
        assert_eq!(small["recommendation"], "continue monitoring");
        // 100 entities a day at 50 kB each: 5 MB a day.
        let growth = small["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == "growth_per_day")
            .unwrap();
        assert!(
            (growth["value"].as_f64().unwrap() - 5_000_000.0).abs() < 1.0,
            "{growth}"
        );
        // Storage (2 GiB) is reached before entities at this rate.
        let days = small["days_to_limits"].as_f64().unwrap();
        let expected = (2048.0 * 1_048_576.0 - 50_000_000.0) / 5_000_000.0;
        assert!((days - expected).abs() < 1e-6, "{days} vs {expected}");

        let big = json!({
            "entities": 120_000, "relations": 10, "database_bytes": 50_000_000,
            "search_p99_ms_at_most": 250.0, "embedding_cache_hit_rate": 0.5,
            "entities_created_last_7d": 0, "store_age_seconds": 86_400, "primary": null,
        });
        let big = report(&big);
        assert_eq!(big["ready"], true);
        let statuses: Vec<(&str, &str)> = big["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| (i["name"].as_str().unwrap(), i["status"].as_str().unwrap()))
            .collect();
        assert!(statuses.contains(&("entities", "OVER")), "{statuses:?}");
        assert!(statuses.contains(&("search_p99", "OVER")), "{statuses:?}");
        assert!(
            statuses.contains(&("cache_hit_rate", "WARN")),
            "{statuses:?}"
        );
        assert!(big["days_to_limits"].is_null());
    }
}
