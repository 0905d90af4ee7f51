//! Notification channels (admin only): `GET/POST
//! /notification-channels`, `GET/PUT/DELETE /notification-channels/{id}`,
//! `POST /notification-channels/{id}/test` (sends a test message now) and
//! `GET /notification-channels/{id}/deliveries` (the last deliveries).
//!
//! A channel is a webhook (`url`, optional `secret` that signs each body)
//! or mail (`to`); it names the `events` it wants and may select hosts by
//! label. The secret is write-only: sealed at rest with the channel id as
//! associated data, read back as `secret_set`. A webhook URL carrying
//! `user:password@` is refused (the secret is the place for a secret).
//! Every change is audited. What is sent is `notify`'s; when,
//! `actors::notifier`'s.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::table::Endpoint;
use super::{audit, List};
use crate::auth::Role;
use crate::crypto;
use crate::http::auth::Principal;
use crate::http::error::{with_conn, ApiError};
use crate::http::extract::Body;
use crate::http::AppState;
use crate::notify::{self, deliver};
use crate::store::notifications::{self as store_n, Channel, ChannelRow, OutboxRow};
use crate::store::{self, DbConnection};

/// Longest channel name, URL, secret and address list accepted.
const MAX_NAME: usize = 100;
const MAX_URL: usize = 2048;
const MAX_SECRET: usize = 1024;
const MAX_RECIPIENTS: usize = 50;
/// Deliveries listed by default and at most.
const DELIVERIES_DEFAULT: i64 = 50;
const DELIVERIES_MAX: i64 = 500;

pub(super) fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::get("/notification-channels", |r| r.to(list))
            .summary("List notification channels, by name")
            .role(Role::Admin)
            .ok(200, "NotificationChannelList"),
        Endpoint::post("/notification-channels", |r| r.to(create))
            .summary("Add a notification channel (webhook or mail)")
            .describe(
                "Events: job.failed, job.recovered, run.missed, run.recovered, host.offline, \
                 host.online, check.failed, check.recovered, drill.failed, drill.recovered, health.down, health.up. \
                 Asking for a failure also brings its recovery.",
            )
            .role(Role::Admin)
            .body("NotificationChannelForm")
            .ok(201, "NotificationChannel")
            .error(409, "The name is taken."),
        Endpoint::get("/notification-channels/{id}", |r| r.to(get))
            .summary("Read a notification channel")
            .role(Role::Admin)
            .ok(200, "NotificationChannel"),
        Endpoint::put("/notification-channels/{id}", |r| r.to(put))
            .summary("Replace a notification channel")
            .describe("An absent `secret` keeps the stored one; `null` clears it.")
            .role(Role::Admin)
            .body("NotificationChannelForm")
            .ok(200, "NotificationChannel")
            .error(409, "The name is taken."),
        Endpoint::delete("/notification-channels/{id}", |r| r.to(delete))
            .summary("Delete a notification channel and its pending deliveries")
            .role(Role::Admin)
            .empty(204, "Deleted."),
        Endpoint::post("/notification-channels/{id}/test", |r| r.to(test))
            .summary("Send a test message through the channel now")
            .role(Role::Admin)
            .ok(200, "NotificationTestResult")
            .error(
                502,
                "The receiver refused the message or could not be reached.",
            ),
        Endpoint::get("/notification-channels/{id}/deliveries", |r| {
            r.to(deliveries)
        })
        .summary("The channel's last deliveries, newest first")
        .role(Role::Admin)
        .query(
            "limit",
            "integer",
            "At most this many (default 50, at most 500).",
        )
        .ok(200, "NotificationDeliveryList"),
    ]
}

/// The OpenAPI schemas of this module.
pub(super) fn schemas() -> Vec<(String, Value)> {
    use super::openapi::{answer, derived, list_of};
    let mut out: Vec<(String, Value)> = [
        derived::<ChannelDto>(),
        derived::<DeliveryDto>(),
        derived::<TestResult>(),
    ]
    .into_iter()
    .map(|(n, s)| (n.to_owned(), answer(s)))
    .collect();
    for (name, schema) in [derived::<ChannelForm>(), derived::<Selector>()] {
        out.push((name.to_owned(), schema));
    }
    for (list, item) in [
        ("NotificationChannelList", "NotificationChannel"),
        ("NotificationDeliveryList", "NotificationDelivery"),
    ] {
        out.push((list.to_owned(), list_of(item)));
    }
    out
}

/// The label selector of a channel.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NotificationSelector)]
pub struct Selector {
    /// Every one of these labels must be on the host.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A channel as answered (never its secret).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = NotificationChannel)]
pub struct ChannelDto {
    id: String,
    name: String,
    /// `webhook` or `email`.
    #[serde(rename = "type")]
    kind: String,
    url: Option<String>,
    /// Whether a signing secret is stored.
    secret_set: bool,
    to: Vec<String>,
    events: Vec<String>,
    #[schema(value_type = Option<NotificationSelector>)]
    selector: Option<Selector>,
    created_at: String,
    updated_at: String,
}

impl From<&Channel> for ChannelDto {
    fn from(c: &Channel) -> Self {
        ChannelDto {
            id: c.id.clone(),
            name: c.name.clone(),
            kind: c.kind.clone(),
            url: c.url.clone(),
            secret_set: c.secret_sealed.is_some(),
            to: c.recipients.clone(),
            events: c.events.clone(),
            selector: c.selector.clone().map(|labels| Selector { labels }),
            created_at: notify::rfc3339(c.created_at),
            updated_at: notify::rfc3339(c.updated_at),
        }
    }
}

/// One delivery (an outbox row).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = NotificationDelivery)]
pub struct DeliveryDto {
    id: String,
    event: String,
    /// `pending` (waiting for an attempt), `delivered` or `failed` (gave up).
    status: String,
    attempts: i32,
    created_at: String,
    delivered_at: Option<String>,
    next_attempt_at: Option<String>,
    /// The receiver's last HTTP status.
    last_status: Option<i32>,
    last_error: Option<String>,
    /// The summary message it went out in, if it did.
    summary_id: Option<String>,
    /// The event's body.
    #[schema(value_type = Object)]
    payload: Value,
}

impl From<&OutboxRow> for DeliveryDto {
    fn from(r: &OutboxRow) -> Self {
        DeliveryDto {
            id: r.id.clone(),
            event: r.event.clone(),
            status: r.status.clone(),
            attempts: r.attempts,
            created_at: notify::rfc3339(r.created_at),
            delivered_at: r.delivered_at.map(notify::rfc3339),
            next_attempt_at: (r.status == store_n::PENDING)
                .then(|| notify::rfc3339(r.next_attempt_at)),
            last_status: r.last_status,
            last_error: r.last_error.clone(),
            summary_id: r.summary_id.clone(),
            payload: serde_json::from_str(&r.payload).unwrap_or(Value::Null),
        }
    }
}

/// What `POST …/test` gave.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = NotificationTestResult)]
pub struct TestResult {
    delivered: bool,
    /// The receiver's HTTP status (webhooks).
    status_code: Option<i32>,
}

/// `POST` and `PUT` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NotificationChannelForm)]
pub(super) struct ChannelForm {
    name: String,
    /// `webhook` or `email`.
    #[serde(rename = "type")]
    kind: String,
    /// The webhook's http(s) URL.
    url: Option<String>,
    /// Signs each webhook body (HMAC-SHA256). Absent keeps, null clears.
    #[serde(default, deserialize_with = "crate::protocol::nullable")]
    #[schema(write_only, value_type = Option<String>)]
    secret: Option<Option<String>>,
    /// Mail recipients.
    #[serde(default)]
    to: Vec<String>,
    events: Vec<String>,
    #[schema(value_type = Option<NotificationSelector>)]
    selector: Option<Selector>,
}

impl std::fmt::Debug for ChannelForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelForm")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field(
                "secret",
                &self.secret.as_ref().map(|s| s.as_ref().map(|_| "***")),
            )
            .finish_non_exhaustive()
    }
}

/// A form checked: what to store, the secret still in clear.
struct Checked {
    name: String,
    kind: String,
    url: Option<String>,
    secret: Option<Option<String>>,
    to: Vec<String>,
    events: Vec<String>,
    selector: Option<BTreeMap<String, String>>,
}

fn check(form: ChannelForm) -> Result<Checked, ApiError> {
    let name = form.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(ApiError::validation(format!(
            "name: 1 to {MAX_NAME} characters"
        )));
    }
    if form.events.is_empty() {
        return Err(ApiError::validation("events: name at least one event"));
    }
    let mut events = Vec::new();
    for e in &form.events {
        if !notify::is_event(e) {
            let known: Vec<&str> = notify::PAIRS.iter().flat_map(|(f, r)| [*f, *r]).collect();
            return Err(ApiError::validation(format!(
                "events: unknown event {e:?} (known: {})",
                known.join(", ")
            )));
        }
        if !events.contains(e) {
            events.push(e.clone());
        }
    }
    match form.kind.as_str() {
        "webhook" => {
            let url = form
                .url
                .ok_or_else(|| ApiError::validation("url: required for a webhook"))?;
            check_webhook_url(&url)?;
            if !form.to.is_empty() {
                return Err(ApiError::validation("to: only for email channels"));
            }
            if let Some(Some(secret)) = &form.secret {
                if secret.is_empty() || secret.len() > MAX_SECRET {
                    return Err(ApiError::validation(format!(
                        "secret: 1 to {MAX_SECRET} bytes (null for none)"
                    )));
                }
            }
            Ok(Checked {
                name,
                kind: form.kind,
                url: Some(url),
                secret: form.secret,
                to: Vec::new(),
                events,
                selector: form.selector.map(|s| s.labels),
            })
        }
        "email" => {
            if form.url.is_some() {
                return Err(ApiError::validation("url: only for webhook channels"));
            }
            if matches!(form.secret, Some(Some(_))) {
                return Err(ApiError::validation("secret: only for webhook channels"));
            }
            if form.to.is_empty() || form.to.len() > MAX_RECIPIENTS {
                return Err(ApiError::validation(format!(
                    "to: 1 to {MAX_RECIPIENTS} mail addresses"
                )));
            }
            for address in &form.to {
                address.parse::<lettre::Address>().map_err(|e| {
                    ApiError::validation(format!("to: {address:?} is not a mail address: {e}"))
                })?;
            }
            Ok(Checked {
                name,
                kind: form.kind,
                url: None,
                secret: Some(None),
                to: form.to,
                events,
                selector: form.selector.map(|s| s.labels),
            })
        }
        other => Err(ApiError::validation(format!(
            "type: expected webhook or email, not {other:?}"
        ))),
    }
}

/// An http(s) URL without credentials in it.
fn check_webhook_url(url: &str) -> Result<(), ApiError> {
    if url.len() > MAX_URL {
        return Err(ApiError::validation(format!(
            "url: at most {MAX_URL} bytes"
        )));
    }
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| ApiError::validation(format!("url: not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ApiError::validation("url: must be http:// or https://"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(ApiError::validation(
            "url: must not carry user:password@; put a shared secret in `secret` (it signs each body)",
        ));
    }
    Ok(())
}

fn load(conn: &mut DbConnection, id: &str) -> Result<Channel, ApiError> {
    store_n::get(conn, id)?
        .ok_or_else(|| ApiError::not_found(&format!("notification channel {id}")))
}

fn taken(name: &str) -> ApiError {
    ApiError::conflict(format!("name: a channel named {name:?} exists"))
}

async fn list(
    state: web::Data<AppState>,
    who: Principal,
) -> Result<web::Json<List<ChannelDto>>, ApiError> {
    who.require(Role::Admin)?;
    let channels = with_conn(&state.pool, |conn| Ok(store_n::list(conn)?)).await?;
    Ok(web::Json(List {
        total: i64::try_from(channels.len()).unwrap_or(i64::MAX),
        items: channels.iter().map(ChannelDto::from).collect(),
    }))
}

async fn get(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<web::Json<ChannelDto>, ApiError> {
    who.require(Role::Admin)?;
    let id = path.into_inner();
    let channel = with_conn(&state.pool, move |conn| load(conn, &id)).await?;
    Ok(web::Json(ChannelDto::from(&channel)))
}

/// Stores a checked form as channel `id` (new when `created_at` is given).
fn row(
    state: &AppState,
    id: &str,
    form: &Checked,
    kept_secret: Option<Vec<u8>>,
    created_at: i64,
) -> Result<ChannelRow, ApiError> {
    let secret_sealed = match &form.secret {
        None => kept_secret,
        Some(None) => None,
        Some(Some(secret)) => {
            Some(crypto::seal_str(&state.key, secret, id.as_bytes()).map_err(ApiError::internal)?)
        }
    };
    let now = store::now_ms();
    Ok(ChannelRow {
        id: id.to_owned(),
        name: form.name.clone(),
        kind: form.kind.clone(),
        url: form.url.clone(),
        secret_sealed,
        recipients: form.to.clone(),
        events: form.events.clone(),
        selector: form.selector.clone(),
        created_at,
        updated_at: now,
    })
}

fn audit_detail(form: &Checked) -> Value {
    json!({
        "name": form.name,
        "type": form.kind,
        "events": form.events,
        "secret_changed": form.secret.is_some(),
    })
}

async fn create(
    state: web::Data<AppState>,
    who: Principal,
    body: Body<ChannelForm>,
) -> Result<HttpResponse, ApiError> {
    who.require(Role::Admin)?;
    let form = check(body.into_inner())?;
    let id = store::new_id();
    let new = row(&state, &id, &form, None, store::now_ms())?;
    let channel = state
        .actors
        .write("adding a notification channel", move |conn| {
            if store_n::by_name(conn, &new.name)?.is_some() {
                return Err(taken(&new.name));
            }
            let channel = store_n::insert(conn, &new)?;
            audit(
                conn,
                &who,
                "notification_channel.create",
                Some(&channel.id),
                Some(audit_detail(&form)),
            )?;
            Ok(channel)
        })
        .await?;
    Ok(HttpResponse::Created().json(ChannelDto::from(&channel)))
}

async fn put(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
    body: Body<ChannelForm>,
) -> Result<web::Json<ChannelDto>, ApiError> {
    who.require(Role::Admin)?;
    let id = path.into_inner();
    let form = check(body.into_inner())?;
    // Sealed before the write (no crypto on the writer); the stored secret
    // is kept as its sealed bytes when the form leaves it out.
    let sealed_new = row(&state, &id, &form, None, 0)?;
    let channel = state
        .actors
        .write("changing a notification channel", move |conn| {
            let before = load(conn, &id)?;
            if let Some(other) = store_n::by_name(conn, &sealed_new.name)? {
                if other.id != id {
                    return Err(taken(&sealed_new.name));
                }
            }
            let mut new = sealed_new;
            new.created_at = before.created_at;
            if form.secret.is_none() {
                new.secret_sealed = before.secret_sealed.clone();
            }
            let channel = store_n::update(conn, &new)?
                .ok_or_else(|| ApiError::not_found(&format!("notification channel {id}")))?;
            audit(
                conn,
                &who,
                "notification_channel.update",
                Some(&id),
                Some(audit_detail(&form)),
            )?;
            Ok(channel)
        })
        .await?;
    Ok(web::Json(ChannelDto::from(&channel)))
}

async fn delete(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    who.require(Role::Admin)?;
    let id = path.into_inner();
    state
        .actors
        .write("deleting a notification channel", move |conn| {
            let channel = load(conn, &id)?;
            store_n::delete(conn, &id)?;
            audit(
                conn,
                &who,
                "notification_channel.delete",
                Some(&id),
                Some(json!({"name": channel.name})),
            )
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn test(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<web::Json<TestResult>, ApiError> {
    who.require(Role::Admin)?;
    let id = path.into_inner();
    let lookup = id.clone();
    let channel = with_conn(&state.pool, move |conn| load(conn, &lookup)).await?;
    let target =
        crate::actors::notifier::target(&state.key, &channel).map_err(ApiError::internal)?;
    let delivery = store::new_id();
    let body = json!({
        "id": delivery,
        "event": "test",
        "occurred_at": notify::rfc3339(store::now_ms()),
        "message": format!("a test message of the channel {:?}, sent by {}", channel.name, who.username),
        "channel": {"id": channel.id, "name": channel.name},
    });
    let result = deliver::send(
        &reqwest::Client::new(),
        &state.config.notify,
        &target,
        &delivery,
        &body,
    )
    .await;
    let detail = match &result {
        Ok(status) => json!({"name": channel.name, "delivered": true, "status_code": status}),
        Err(f) => {
            json!({"name": channel.name, "delivered": false, "status_code": f.status_code, "error": f.error})
        }
    };
    state
        .actors
        .write("auditing a notification test", move |conn| {
            audit(
                conn,
                &who,
                "notification_channel.test",
                Some(&id),
                Some(detail),
            )
        })
        .await?;
    match result {
        Ok(status_code) => Ok(web::Json(TestResult {
            delivered: true,
            status_code,
        })),
        Err(f) => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "delivery_failed",
            f.error,
        )),
    }
}

/// `?limit=` of the deliveries.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveriesQuery {
    limit: Option<i64>,
}

async fn deliveries(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
    query: web::Query<DeliveriesQuery>,
) -> Result<web::Json<List<DeliveryDto>>, ApiError> {
    who.require(Role::Admin)?;
    let limit = query.limit.unwrap_or(DELIVERIES_DEFAULT);
    if !(1..=DELIVERIES_MAX).contains(&limit) {
        return Err(ApiError::validation(format!(
            "limit: between 1 and {DELIVERIES_MAX}"
        )));
    }
    let id = path.into_inner();
    let rows = with_conn(&state.pool, move |conn| {
        load(conn, &id)?;
        Ok(store_n::deliveries(conn, &id, limit)?)
    })
    .await?;
    Ok(web::Json(List {
        total: i64::try_from(rows.len()).unwrap_or(i64::MAX),
        items: rows.iter().map(DeliveryDto::from).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(kind: &str, url: Option<&str>, to: &[&str], events: &[&str]) -> ChannelForm {
        ChannelForm {
            name: "ops".into(),
            kind: kind.into(),
            url: url.map(str::to_owned),
            secret: None,
            to: to.iter().map(|s| (*s).to_owned()).collect(),
            events: events.iter().map(|s| (*s).to_owned()).collect(),
            selector: None,
        }
    }

    fn refused(f: ChannelForm) -> String {
        match check(f) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn forms_are_checked_with_the_field_named() {
        assert!(check(form(
            "webhook",
            Some("https://hooks.example/x"),
            &[],
            &["job.failed"]
        ))
        .is_ok());
        assert!(check(form("email", None, &["ops@example.com"], &["host.offline"])).is_ok());
        assert!(refused(form("sms", None, &[], &["job.failed"])).contains("type"));
        assert!(refused(form("webhook", None, &[], &["job.failed"])).contains("url"));
        assert!(refused(form("webhook", Some("ftp://x"), &[], &["job.failed"])).contains("url"));
        assert!(refused(form(
            "webhook",
            Some("https://u:p@hooks.example/"),
            &[],
            &["job.failed"]
        ))
        .contains("secret"));
        assert!(
            refused(form("webhook", Some("https://h/"), &[], &["job.exploded"]))
                .contains("job.exploded")
        );
        assert!(refused(form("webhook", Some("https://h/"), &[], &[])).contains("events"));
        assert!(refused(form("email", None, &[], &["job.failed"])).contains("to"));
        assert!(refused(form("email", None, &["not an address"], &["job.failed"])).contains("to"));
    }
}
