//! `baseline-actix`: the floor of our transport stack, to split our
//! memory per agent into what actix-web and `actix_web_actors` cost and
//! what the server's own session code costs.
//!
//! The bare server (`baseline-actix-server`, this binary started as a
//! child process) is actix-web with its default workers and one route
//! that upgrades to an `actix_web_actors` WebSocket actor that ignores
//! every frame (the library answers pings) — no authentication, registry,
//! database or timers. It is the one other user of `actix_web_actors`
//! (STYLE.md keeps it to the session and the upgrade route) because it
//! must use the same stack to measure it; it moves with them.
//! Measured like `baseline-ws`.

use std::net::SocketAddr;

use actix::{Actor, ActorContext, StreamHandler};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use actix_web_actors::ws;
use anyhow::Context;

use crate::baseline_ws::{measure_bare, BareKind};
use crate::report::Report;
use crate::Options;

/// A session that does nothing.
struct Idle;

impl Actor for Idle {
    type Context = ws::WebsocketContext<Self>;
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Idle {
    fn handle(&mut self, item: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        match item {
            Ok(ws::Message::Ping(payload)) => ctx.pong(&payload),
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            Ok(_) => {}
            Err(_) => ctx.stop(),
        }
    }
}

async fn upgrade(req: HttpRequest, stream: web::Payload) -> Result<HttpResponse, actix_web::Error> {
    ws::start(Idle, &req, stream)
}

/// The bare actix server: runs until killed.
pub fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        let server = HttpServer::new(|| App::new().route("/", web::get().to(upgrade)))
            .bind(listen)
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = server
            .addrs()
            .first()
            .copied()
            .context("no listening address")?;
        println!("listening on ws://{addr}");
        server.run().await.context("the bare actix server failed")
    })
}

pub async fn run(opts: &Options) -> anyhow::Result<Report> {
    measure_bare(opts, BareKind::Actix).await
}
