//! The route table of `/api/v1`: every endpoint once, as an [`Endpoint`]
//! that both registers its handler (`api::routes`) and describes itself for
//! the OpenAPI document (`openapi`), so the two cannot drift apart.
//!
//! Each resource module has `pub(super) fn endpoints() -> Vec<Endpoint>`
//! built with the small builder here:
//!
//! ```ignore
//! Endpoint::get("/users", |r| r.to(list))
//!     .summary("List users")
//!     .role(Role::Admin)
//!     .paged()
//!     .ok(200, "UserList")
//! ```
//!
//! Schema names (`"UserList"`) are the component schemas of `openapi`;
//! a test checks every name used here exists there.

use actix_web::http::Method;
use actix_web::Route;

use crate::auth::Role;

/// An HTTP method the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verb {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Verb {
    /// Every verb, in the order the document lists them.
    pub const ALL: [Verb; 5] = [Verb::Get, Verb::Post, Verb::Put, Verb::Patch, Verb::Delete];

    /// The actix method.
    pub fn method(self) -> Method {
        match self {
            Verb::Get => Method::GET,
            Verb::Post => Method::POST,
            Verb::Put => Method::PUT,
            Verb::Patch => Method::PATCH,
            Verb::Delete => Method::DELETE,
        }
    }

    /// The lower-case name OpenAPI uses as the operation's key.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Post => "post",
            Verb::Put => "put",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
        }
    }
}

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (login, enrolment with its token, the OpenAPI document).
    Public,
    /// An agent with its agent token (the WebSocket upgrade).
    Agent,
    /// Any authenticated user (API token or session cookie).
    User,
    /// A user with at least this role.
    Role(Role),
}

/// A query parameter.
#[derive(Debug, Clone)]
pub struct Param {
    pub name: &'static str,
    /// JSON Schema type: `string`, `integer`, …
    pub kind: &'static str,
    /// JSON Schema `format` (`date-time`), if any.
    pub format: Option<&'static str>,
    /// Allowed values, if the set is closed.
    pub values: Vec<&'static str>,
    pub description: &'static str,
}

/// One documented answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub description: &'static str,
    /// Component schema of the JSON body; `None`: no JSON body.
    pub schema: Option<&'static str>,
    /// A non-JSON body's media type (`text/event-stream`).
    pub media: Option<&'static str>,
}

/// Builds the actix route from a method-guarded `web::Route`.
pub type Register = fn(Route) -> Route;

/// One method on one path of the API.
#[derive(Clone)]
pub struct Endpoint {
    pub verb: Verb,
    /// The path below `/api/v1`, with `{name}` parameters.
    pub path: &'static str,
    pub summary: &'static str,
    pub description: &'static str,
    pub access: Access,
    pub query: Vec<Param>,
    /// Component schema of the JSON request body.
    pub body: Option<&'static str>,
    pub answers: Vec<Answer>,
    /// Adds the handler to the route.
    pub register: Register,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("verb", &self.verb)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    fn new(verb: Verb, path: &'static str, register: Register) -> Self {
        Endpoint {
            verb,
            path,
            summary: "",
            description: "",
            access: Access::User,
            query: Vec::new(),
            body: None,
            answers: Vec::new(),
            register,
        }
    }

    pub fn get(path: &'static str, register: Register) -> Self {
        Self::new(Verb::Get, path, register)
    }

    pub fn post(path: &'static str, register: Register) -> Self {
        Self::new(Verb::Post, path, register)
    }

    pub fn put(path: &'static str, register: Register) -> Self {
        Self::new(Verb::Put, path, register)
    }

    pub fn patch(path: &'static str, register: Register) -> Self {
        Self::new(Verb::Patch, path, register)
    }

    pub fn delete(path: &'static str, register: Register) -> Self {
        Self::new(Verb::Delete, path, register)
    }

    /// One line saying what it does.
    pub fn summary(mut self, text: &'static str) -> Self {
        self.summary = text;
        self
    }

    /// Longer prose (rules, side effects).
    pub fn describe(mut self, text: &'static str) -> Self {
        self.description = text;
        self
    }

    /// Needs at least `role`.
    pub fn role(mut self, role: Role) -> Self {
        self.access = Access::Role(role);
        self
    }

    /// Who may call it, when not a role.
    pub fn access(mut self, access: Access) -> Self {
        self.access = access;
        self
    }

    /// A query parameter of a JSON type.
    pub fn query(mut self, name: &'static str, kind: &'static str, text: &'static str) -> Self {
        self.query.push(Param {
            name,
            kind,
            format: None,
            values: Vec::new(),
            description: text,
        });
        self
    }

    /// An RFC 3339 time query parameter.
    pub fn query_time(mut self, name: &'static str, text: &'static str) -> Self {
        self.query.push(Param {
            name,
            kind: "string",
            format: Some("date-time"),
            values: Vec::new(),
            description: text,
        });
        self
    }

    /// A query parameter with a closed set of values.
    pub fn query_enum(
        mut self,
        name: &'static str,
        values: Vec<&'static str>,
        text: &'static str,
    ) -> Self {
        self.query.push(Param {
            name,
            kind: "string",
            format: None,
            values,
            description: text,
        });
        self
    }

    /// `?limit=&offset=`.
    pub fn paged(self) -> Self {
        self.query(
            "limit",
            "integer",
            "Page size, 1 to 1000 (default 50 unless stated).",
        )
        .query("offset", "integer", "Items to skip (default 0).")
    }

    /// The JSON request body's component schema.
    pub fn body(mut self, schema: &'static str) -> Self {
        self.body = Some(schema);
        self
    }

    /// A success answer with a JSON body.
    pub fn ok(mut self, status: u16, schema: &'static str) -> Self {
        self.answers.push(Answer {
            status,
            description: "Success.",
            schema: Some(schema),
            media: None,
        });
        self
    }

    /// A success answer without a body.
    pub fn empty(mut self, status: u16, description: &'static str) -> Self {
        self.answers.push(Answer {
            status,
            description,
            schema: None,
            media: None,
        });
        self
    }

    /// A 200 answer that is a Server-Sent Events stream.
    pub fn event_stream(mut self, description: &'static str) -> Self {
        self.answers.push(Answer {
            status: 200,
            description,
            schema: None,
            media: Some("text/event-stream"),
        });
        self
    }

    /// A success answer whose body is a byte stream of `media`.
    pub fn stream(mut self, status: u16, media: &'static str, description: &'static str) -> Self {
        self.answers.push(Answer {
            status,
            description,
            schema: None,
            media: Some(media),
        });
        self
    }

    /// An error answer (body: the `Error` schema) besides the ones every
    /// endpoint of its kind has (see `openapi`).
    pub fn error(mut self, status: u16, description: &'static str) -> Self {
        self.answers.push(Answer {
            status,
            description,
            schema: Some("Error"),
            media: None,
        });
        self
    }

    /// The names of the path's `{parameters}`, in order.
    pub fn path_params(&self) -> Vec<&'static str> {
        self.path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Path parameters are read from the braces in order.
    #[test]
    fn path_params_in_order() {
        let e = Endpoint::get("/hosts/{id}/schedules/{sid}", |r| r);
        assert_eq!(e.path_params(), ["id", "sid"]);
        assert!(Endpoint::get("/jobs", |r| r).path_params().is_empty());
    }
}
