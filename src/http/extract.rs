//! What the handlers of the REST API, the UI and the agent routes share to
//! read a request and the rows behind it: the JSON body extractor
//! ([`Body`]), query parameters ([`int_param`], RFC 3339 [`parse_time`]),
//! stored times as RFC 3339 ([`Time`]), the live-host lookup
//! ([`live_host`]) and the host lists' reads ([`host_list`]). (Stored JSON columns arrive typed: `store::Json`.)
//!
//! Every error is an [`ApiError`] whose message names the field or
//! parameter at fault.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use serde::{Serialize, Serializer};

use crate::http::error::{with_conn, ApiError};
use crate::store::{self, models::Host, DbConnection};

/// A JSON request body whose errors name the field at fault: `web::Json`
/// checks the content type and size limit (and maps their errors), then
/// `serde_path_to_error` decodes, so a wrong type reads
/// `ttl_seconds: invalid type: string "soon", expected u64`.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<T> Body<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Body<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: serde::de::DeserializeOwned + 'static> FromRequest for Body<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json = web::Json::<serde_json::Value>::from_request(req, payload);
        Box::pin(async move {
            let value = json.await?.into_inner();
            serde_path_to_error::deserialize(value)
                .map(Body)
                .map_err(|e| {
                    let path = e.path().to_string();
                    let inner = e.into_inner();
                    let message = if path == "." {
                        format!("invalid JSON body: {inner}")
                    } else {
                        format!("{path}: {inner}")
                    };
                    ApiError::bad_request(message).into()
                })
        })
    }
}

/// Parses an integer query parameter; the error names it.
pub fn int_param(name: &str, text: Option<&str>) -> Result<Option<i64>, ApiError> {
    match text.map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => text.parse::<i64>().map(Some).map_err(|_| {
            ApiError::validation(format!("{name}: expected a whole number, got {text:?}"))
        }),
    }
}

/// A stored time (Unix milliseconds UTC) that serialises as RFC 3339 UTC
/// with milliseconds: `"2026-01-02T03:04:05.678Z"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Time(pub i64);

impl Time {
    /// `Some(Time)` of an optional stored time.
    pub fn opt(ms: Option<i64>) -> Option<Time> {
        ms.map(Time)
    }

    fn to_rfc3339(self) -> Option<String> {
        chrono::DateTime::from_timestamp_millis(self.0)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    }
}

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.to_rfc3339() {
            Some(text) => serializer.serialize_str(&text),
            None => Err(serde::ser::Error::custom(format!(
                "time {} ms is out of range",
                self.0
            ))),
        }
    }
}

/// Parses an RFC 3339 query parameter (`since`) to Unix milliseconds;
/// the error names the parameter.
pub fn parse_time(name: &str, text: &str) -> Result<i64, ApiError> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|e| {
            ApiError::validation(format!(
                "{name}: expected an RFC 3339 time such as 2026-01-02T03:04:05Z ({e})"
            ))
        })
}

/// The host with this id, unless it does not exist or is revoked (both
/// 404: a revoked host is gone from the API).
pub fn live_host(conn: &mut DbConnection, id: &str) -> Result<Host, ApiError> {
    match store::hosts::get(conn, id)? {
        Some(host) if host.revoked_at.is_none() => Ok(host),
        _ => Err(ApiError::not_found(&format!("host {id}"))),
    }
}

/// [`live_host`] with its schedule and configuration versions, in one
/// statement.
pub fn live_host_with_version(
    conn: &mut DbConnection,
    id: &str,
) -> Result<store::hosts::HostWithVersion, ApiError> {
    match store::hosts::get_with_version(conn, id)? {
        Some(row) if row.host.revoked_at.is_none() => Ok(row),
        _ => Err(ApiError::not_found(&format!("host {id}"))),
    }
}

/// [`store::hosts::list`] with its reads split over two connections: the
/// page, then its schedule versions beside its total (when the page does
/// not tell it). On PostgreSQL each statement in a row is a round trip;
/// this is two in a row instead of three (the host lists of the UI and
/// the API).
pub async fn host_list(
    pool: &store::Pool,
    filter: store::hosts::HostFilter,
) -> Result<store::Page<store::hosts::HostWithVersion>, ApiError> {
    let page = with_conn(pool, {
        let filter = filter.clone();
        move |conn| Ok(store::hosts::page_with_config(conn, &filter)?)
    })
    .await?;
    let len = page.len();
    let items = with_conn(pool, move |conn| {
        Ok(store::hosts::with_schedule_versions(conn, page)?)
    });
    let (items, total) = match store::hosts::known_total(&filter, len) {
        Some(total) => (items.await?, total),
        None => {
            let total = with_conn(pool, move |conn| {
                Ok(store::hosts::total(conn, &filter, len)?)
            });
            futures_util::future::try_join(items, total).await?
        }
    };
    Ok(store::Page { items, total })
}

#[cfg(test)]
mod tests {
    use actix_web::http::StatusCode;

    use super::*;

    /// Times serialise as RFC 3339 UTC with milliseconds and a Z.
    #[test]
    fn time_is_rfc3339_utc() {
        let json = serde_json::to_string(&Time(1_767_323_045_678)).unwrap();
        assert_eq!(json, "\"2026-01-02T03:04:05.678Z\"");
        assert!(serde_json::to_string(&Time(i64::MAX)).is_err());
    }

    /// `since` parses RFC 3339 with any offset; other text is a 400 naming the parameter.
    #[test]
    fn parse_since() {
        assert_eq!(
            parse_time("since", "2026-01-02T03:04:05.678Z").unwrap(),
            1_767_323_045_678
        );
        assert_eq!(
            parse_time("since", "2026-01-02T04:04:05.678+01:00").unwrap(),
            1_767_323_045_678
        );
        let err = parse_time("since", "yesterday").unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(err.message.starts_with("since:"), "{}", err.message);
    }
}
