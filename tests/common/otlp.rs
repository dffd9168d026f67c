//! A small OTLP/HTTP trace receiver on loopback: it decodes each `POST /v1/traces`
//! (protobuf) and keeps every span with its resource's service name.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::http::{Reply, Request, Response, Server};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;

#[derive(Debug, Clone)]
pub struct Span {
    pub service: String,
    pub name: String,
    pub trace_id: Vec<u8>,
    pub span_id: Vec<u8>,
    pub parent_span_id: Vec<u8>,
    pub attributes: Vec<(String, String)>,
    /// 2 is ERROR.
    pub status_code: i32,
}

impl Span {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Default)]
pub struct Receiver {
    pub addr: String,
    spans: Arc<Mutex<Vec<Span>>>,
    pub bodies: Arc<Mutex<Vec<Vec<u8>>>>,
    server: Option<Arc<Server>>,
}

impl Receiver {
    pub fn start() -> Self {
        let mut r = Receiver::default();
        let me = r.clone();
        let server = Server::start(Duration::from_secs(60), move |req| {
            Reply::Send(me.answer(req))
        });
        r.addr = server.addr.clone();
        r.server = Some(Arc::new(server));
        r
    }

    pub fn url(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }

    pub fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }

    fn answer(&self, req: Request) -> Response {
        let ok = req.method == "POST" && req.path == "/v1/traces";
        if ok {
            self.bodies.lock().unwrap().push(req.body.clone());
            if let Ok(export) = ExportTraceServiceRequest::decode(req.body.as_slice()) {
                let mut spans = self.spans.lock().unwrap();
                for rs in export.resource_spans {
                    let service = rs
                        .resource
                        .iter()
                        .flat_map(|r| r.attributes.iter())
                        .find(|kv| kv.key == "service.name")
                        .and_then(|kv| kv.value.as_ref())
                        .map(|v| text(&v.value))
                        .unwrap_or_default();
                    for ss in rs.scope_spans {
                        for s in ss.spans {
                            spans.push(Span {
                                service: service.clone(),
                                name: s.name,
                                trace_id: s.trace_id,
                                span_id: s.span_id,
                                parent_span_id: s.parent_span_id,
                                attributes: s
                                    .attributes
                                    .iter()
                                    .map(|kv| {
                                        (
                                            kv.key.clone(),
                                            kv.value
                                                .as_ref()
                                                .map(|v| text(&v.value))
                                                .unwrap_or_default(),
                                        )
                                    })
                                    .collect(),
                                status_code: s.status.map(|st| st.code).unwrap_or(0),
                            });
                        }
                    }
                }
            }
        }
        Response::new(
            if ok { 200 } else { 404 },
            "application/x-protobuf",
            Vec::new(),
        )
    }
}

fn text(v: &Option<AnyValue>) -> String {
    match v {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}
