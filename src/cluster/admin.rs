//! The maintenance routes of the local daemon's admin endpoint (the same
//! bearer token and listener as `/pause`, `crate::http::admin`):
//! `POST /maintenance/on?reason=TEXT[&for=DURATION]`, `POST
//! /maintenance/off`, `GET /maintenance`. The CLI's `maintenance`
//! subcommand calls them (`client.rs`).

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{Query, State};
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::maintenance::{unix, Maintenance, MaintenanceError, MaintenanceRecord};
use crate::http::admin::{authorize, caller};
use crate::input::InputError;
use crate::rules::control::Control;

#[derive(Clone)]
struct Api {
    control: Arc<Control>,
    maintenance: Arc<Maintenance>,
}

/// What `GET /maintenance` and the changes answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaintenanceStatus {
    /// Maintenance holds every action now.
    pub in_force: bool,
    /// Seconds until it expires (0 when not in force).
    pub remaining_seconds: f64,
    pub record: Option<MaintenanceRecord>,
    /// This node.
    pub node: String,
}

impl MaintenanceStatus {
    pub fn of(maintenance: &Maintenance, now: SystemTime) -> Self {
        let record = maintenance.record();
        let in_force = record.as_ref().is_some_and(|r| r.in_force(now));
        Self {
            in_force,
            remaining_seconds: record
                .as_ref()
                .filter(|_| in_force)
                .map_or(0.0, |r| r.expires_at - unix(now)),
            record,
            node: maintenance.node().to_string(),
        }
    }
}

pub fn routes<S: Clone + Send + Sync + 'static>(
    control: Arc<Control>,
    maintenance: Arc<Maintenance>,
) -> Router<S> {
    Router::new()
        .route("/maintenance", get(status))
        .route("/maintenance/on", post(on))
        .route("/maintenance/off", post(off))
        .with_state(Api {
            control,
            maintenance,
        })
}

#[derive(Debug, Deserialize)]
struct OnQuery {
    reason: Option<String>,
    #[serde(rename = "for")]
    duration: Option<String>,
}

/// A maintenance window (`for=`, `maintenance on --for`): a humantime
/// duration, longer than 0, at most `max` (`[cluster] max_maintenance`).
/// The CLI checks with the same function before it asks the daemon.
pub fn parse_for(text: &str, max: std::time::Duration) -> Result<std::time::Duration, InputError> {
    let duration = humantime::parse_duration(text).map_err(|e| InputError::Malformed {
        field: "for",
        message: format!("{text:?} is not a duration such as \"2h\" or \"3d\": {e}"),
    })?;
    if duration.is_zero() {
        return Err(InputError::OutOfRange {
            field: "for",
            value: text.to_string(),
            range: "longer than 0".into(),
        });
    }
    crate::input::bounded("for", duration, max)
}

fn answer(result: Result<MaintenanceRecord, MaintenanceError>, api: &Api) -> Response {
    match result {
        Ok(_) => Json(MaintenanceStatus::of(&api.maintenance, SystemTime::now())).into_response(),
        Err(e @ (MaintenanceError::NoReason | MaintenanceError::Invalid(_))) => {
            (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

async fn status(State(api): State<Api>, headers: HeaderMap) -> Response {
    if let Some(denied) = authorize(&api.control, &headers) {
        return denied;
    }
    Json(MaintenanceStatus::of(&api.maintenance, SystemTime::now())).into_response()
}

async fn on(
    State(api): State<Api>,
    extensions: Extensions,
    headers: HeaderMap,
    Query(query): Query<OnQuery>,
) -> Response {
    if let Some(denied) = authorize(&api.control, &headers) {
        return denied;
    }
    let duration = match query.duration.as_deref().map(|text| {
        parse_for(text, api.maintenance.limits().max_duration)
            .map_err(|e| crate::input::reject(crate::input::Source::Admin, e))
    }) {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(e)) => {
            return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response();
        }
    };
    let reason = query.reason.unwrap_or_default();
    let result = api
        .maintenance
        .set_on(&reason, duration, &caller(&extensions), SystemTime::now());
    answer(result, &api)
}

async fn off(State(api): State<Api>, extensions: Extensions, headers: HeaderMap) -> Response {
    if let Some(denied) = authorize(&api.control, &headers) {
        return denied;
    }
    let result = api
        .maintenance
        .set_off(&caller(&extensions), SystemTime::now());
    answer(result, &api)
}
