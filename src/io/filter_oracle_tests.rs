//! Property test: random `$filter` texts over a realistic fleet select the same events through
//! SQL (SQLite) as through a small in-memory evaluator of the bound predicate, written from the
//! OData rules independently of the SQL lowering. It lives in `io` because the seed generator
//! makes its fleet; what it tests is the store's filter lowering.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::edm::{DateTimeOffset, Seconds};
use crate::io::seed::FleetGenerator;
use crate::model::Deployment;
use crate::model::{AUTOPILOT_EVENT, Entity, Value};
use crate::odata::{Column, CompareOp, Operand, Predicate, Scalar, StringFunction, bind_filter};
use crate::store::{Collection, Durability, Listing, Store};

fn scalar_of(entity: &Entity, column: &Column) -> Scalar {
    if column.column == "id" {
        return Scalar::Text(entity.id.clone());
    }
    let (position, _) = AUTOPILOT_EVENT
        .property(column.name)
        .expect("bound columns exist");
    match &entity.values[position] {
        Value::Null => Scalar::Null,
        Value::String(text) => Scalar::Text(text.clone()),
        Value::DateTimeOffset(instant) => Scalar::Integer(instant.ticks()),
        Value::Duration(span) => Scalar::Integer(span.ticks()),
        Value::Int32(number) => Scalar::Integer(i64::from(*number)),
        Value::Boolean(flag) => Scalar::Boolean(*flag),
        Value::Enum(underlying) => Scalar::Integer(*underlying),
    }
}

/// OData semantics: a null operand makes `eq` true only against null, `ne` its negation, and
/// every ordering comparison false.
fn evaluate(predicate: &Predicate, entity: &Entity) -> bool {
    let value = |operand: &Operand| match operand {
        Operand::Column(column) => scalar_of(entity, column),
        Operand::Value(value) => value.clone(),
    };
    match predicate {
        Predicate::And(terms) => terms.iter().all(|term| evaluate(term, entity)),
        Predicate::Or(terms) => terms.iter().any(|term| evaluate(term, entity)),
        Predicate::Not(inner) => !evaluate(inner, entity),
        Predicate::Constant(value) => *value,
        Predicate::IsTrue(column) => scalar_of(entity, column) == Scalar::Boolean(true),
        Predicate::Has(column, bits) => match scalar_of(entity, column) {
            Scalar::Integer(value) => value & bits == *bits,
            _ => false,
        },
        Predicate::In(column, values) => values.contains(&scalar_of(entity, column)),
        Predicate::Text(function, column, needle) => match scalar_of(entity, column) {
            Scalar::Text(text) => match function {
                StringFunction::StartsWith => text.starts_with(needle.as_str()),
                StringFunction::EndsWith => text.ends_with(needle.as_str()),
                StringFunction::Contains => text.contains(needle.as_str()),
            },
            _ => false,
        },
        Predicate::Compare(op, left, right) => {
            let (a, b) = (value(left), value(right));
            if a == Scalar::Null || b == Scalar::Null {
                let both = a == b;
                return match op {
                    CompareOp::Eq => both,
                    CompareOp::Ne => !both,
                    _ => false,
                };
            }
            let ordering = match (&a, &b) {
                (Scalar::Integer(x), Scalar::Integer(y)) => x.cmp(y),
                (Scalar::Text(x), Scalar::Text(y)) => x.as_bytes().cmp(y.as_bytes()),
                (Scalar::Boolean(x), Scalar::Boolean(y)) => x.cmp(y),
                _ => unreachable!("the binder only compares like types"),
            };
            match op {
                CompareOp::Eq => ordering.is_eq(),
                CompareOp::Ne => ordering.is_ne(),
                CompareOp::Gt => ordering.is_gt(),
                CompareOp::Ge => ordering.is_ge(),
                CompareOp::Lt => ordering.is_lt(),
                CompareOp::Le => ordering.is_le(),
            }
        }
    }
}

fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Filter texts over the properties people filter on, with literals drawn from the data.
fn filter_strategy(pools: Pools) -> impl Strategy<Value = String> {
    let Pools {
        serials,
        upns,
        instants,
        durations,
        substrings,
    } = pools;
    let string_property = prop::sample::select(vec![
        "deviceSerialNumber",
        "userPrincipalName",
        "osVersion",
        "enrollmentFailureDetails",
        "windowsAutopilotDeploymentProfileDisplayName",
        "managedDeviceName",
    ]);
    let comparison = prop::sample::select(vec!["eq", "ne", "gt", "ge", "lt", "le"]);
    let text_literal = prop_oneof![
        prop::sample::select(serials).prop_map(|s| quote(&s)),
        prop::sample::select(upns).prop_map(|s| quote(&s)),
        Just("null".to_string()),
        Just("''".to_string()),
        Just("'10.0.22631.3296'".to_string()),
    ];
    let strings = (string_property.clone(), comparison.clone(), text_literal)
        .prop_map(|(p, op, lit)| format!("{p} {op} {lit}"));
    let functions = (
        prop::sample::select(vec!["startswith", "endswith", "contains"]),
        string_property,
        prop::sample::select(substrings),
    )
        .prop_map(|(f, p, s)| format!("{f}({p}, {})", quote(&s)));
    let states = prop::sample::select(vec![
        "unknown",
        "success",
        "inProgress",
        "failure",
        "successWithTimeout",
        "notAttempted",
        "successOnRetry",
    ]);
    let enums = prop_oneof![
        (comparison.clone(), states.clone())
            .prop_map(|(op, s)| format!("deploymentState {op} '{s}'")),
        (states.clone(), states.clone())
            .prop_map(|(a, b)| format!("accountSetupStatus in ('{a}', '{b}')")),
        states.prop_map(|s| format!("deviceSetupStatus has '{s}'")),
        prop::sample::select(vec![
            "azureADJoinedWithWhiteGlove",
            "offlineDomainJoined",
            "unknown"
        ])
        .prop_map(|m| format!(
            "enrollmentType has microsoft.graph.windowsAutopilotEnrollmentType'{m}'"
        )),
    ];
    let times = (
        prop::sample::select(vec![
            "eventDateTime",
            "deploymentEndDateTime",
            "enrollmentStartDateTime",
        ]),
        comparison.clone(),
        prop::sample::select(instants),
    )
        .prop_map(|(p, op, t)| format!("{p} {op} {t}"));
    let spans = (
        prop::sample::select(vec!["deploymentTotalDuration", "accountSetupDuration"]),
        comparison.clone(),
        prop::sample::select(durations),
    )
        .prop_map(|(p, op, d)| format!("{p} {op} duration'{d}'"));
    let numbers = (
        prop::sample::select(vec!["targetedAppCount", "targetedPolicyCount"]),
        comparison,
        0..45i64,
    )
        .prop_map(|(p, op, n)| format!("{p} {op} {n}"));
    let leaf = prop_oneof![strings, functions, enums, times, spans, numbers];
    leaf.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) and ({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) or ({b})")),
            inner.prop_map(|a| format!("not ({a})")),
        ]
    })
}

struct Pools {
    serials: Vec<String>,
    upns: Vec<String>,
    instants: Vec<String>,
    durations: Vec<String>,
    substrings: Vec<String>,
}

fn pools(fleet: &[Deployment]) -> Pools {
    let text = |entity: &Entity, name: &str| match &entity.values
        [AUTOPILOT_EVENT.property(name).unwrap().0]
    {
        Value::String(text) => Some(text.clone()),
        _ => None,
    };
    let events: Vec<&Entity> = fleet.iter().map(|d| &d.event).collect();
    let serials: Vec<String> = events
        .iter()
        .filter_map(|e| text(e, "deviceSerialNumber"))
        .take(40)
        .collect();
    let upns: Vec<String> = events
        .iter()
        .filter_map(|e| text(e, "userPrincipalName"))
        .take(40)
        .collect();
    let instants = events
        .iter()
        .take(40)
        .map(
            |e| match &e.values[AUTOPILOT_EVENT.property("eventDateTime").unwrap().0] {
                Value::DateTimeOffset(instant) => instant.to_string(),
                other => panic!("{other:?}"),
            },
        )
        .chain([
            "0001-01-01T00:00:00Z".to_string(),
            "2026-10-01T00:00:00+02:00".to_string(),
        ])
        .collect();
    let durations = vec!["PT0S", "PT5M", "PT15M", "PT25M30.5S", "PT1H", "P1D"]
        .into_iter()
        .map(String::from)
        .collect();
    let substrings = vec![
        "5CG",
        "PF",
        "10.0.2",
        ".onmicrosoft.com",
        "timed out",
        "Autopilot",
        "AP-",
        "a",
        "",
        "Z",
    ]
    .into_iter()
    .map(String::from)
    .chain(serials.iter().take(5).map(|s| s[1..4].to_string()))
    .collect();
    Pools {
        serials,
        upns,
        instants,
        durations,
        substrings,
    }
}

#[test]
fn sqlite_and_the_in_memory_evaluator_select_the_same_events() {
    let directory = tempfile::tempdir().unwrap();
    same_events_through_sql_and_evaluator(&Store::sqlite_url(directory.path()));
}

/// The same on PostgreSQL, when the suite is given one (`GRAPHPILOT_TEST_POSTGRES`).
#[test]
fn postgres_and_the_in_memory_evaluator_select_the_same_events() {
    let Some(server) = std::env::var("GRAPHPILOT_TEST_POSTGRES")
        .ok()
        .filter(|s| !s.is_empty())
    else {
        return;
    };
    let server = server.trim_end_matches('/').to_string();
    let name = format!("gp_test_{}", uuid::Uuid::new_v4().simple());
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        sqlx::any::install_default_drivers();
        let mut connection =
            <sqlx::AnyConnection as sqlx::Connection>::connect(&format!("{server}/postgres"))
                .await
                .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut connection)
            .await
            .unwrap();
    });
    same_events_through_sql_and_evaluator(&format!("{server}/{name}"));
}

fn same_events_through_sql_and_evaluator(url: &str) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let end = DateTimeOffset::parse("2026-11-01T00:00:00Z", Seconds::Required).unwrap();
    let mut generator =
        FleetGenerator::new("oracle", 42, end, crate::io::seed::Scenario::MostlyHealthy);
    let fleet: Vec<Deployment> = (0..400).map(|_| generator.next_deployment()).collect();
    let events: Vec<Entity> = fleet.iter().map(|d| d.event.clone()).collect();
    let strategy = filter_strategy(pools(&fleet));
    let store = runtime.block_on(async {
        let store = Store::open(url, Durability::Normal).await.unwrap();
        store
            .bulk_load("oracle", fleet, crate::store::LoadKind::Insert)
            .await
            .unwrap();
        store
    });
    let mut runner = TestRunner::new(Config {
        cases: 400,
        ..Config::default()
    });
    runner
        .run(&strategy, |text| {
            let predicate = bind_filter(&AUTOPILOT_EVENT, &text)
                .map_err(|error| TestCaseError::fail(format!("{text}: {error}")))?;
            let mut expected: Vec<&str> = events
                .iter()
                .filter(|event| evaluate(&predicate, event))
                .map(|event| event.id.as_str())
                .collect();
            let rows = runtime
                .block_on(store.page(
                    "oracle",
                    &Listing {
                        collection: &Collection::Events,
                        filter: Some(&predicate),
                        order: &[],
                        after: None,
                        skip: 0,
                        limit: 10_000,
                    },
                ))
                .unwrap();
            let mut found: Vec<&str> = rows.iter().map(|row| row.id.as_str()).collect();
            expected.sort_unstable();
            found.sort_unstable();
            prop_assert_eq!(found, expected, "{}", text);
            Ok(())
        })
        .unwrap();
    runtime.block_on(store.close());
}
