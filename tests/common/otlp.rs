//! A small OTLP/HTTP trace receiver on loopback: it decodes each `POST /v1/traces`
//! (protobuf) and keeps every span with its resource's service name.

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

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
}

impl Receiver {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let r = Receiver {
            addr: listener.local_addr().unwrap().to_string(),
            ..Default::default()
        };
        let me = r.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let me = me.clone();
                std::thread::spawn(move || me.serve(conn));
            }
        });
        r
    }

    pub fn url(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }

    pub fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }

    fn serve(&self, conn: TcpStream) {
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        while let Some(req) = super::http::read_request(&mut reader) {
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
            let status = if ok { "200 OK" } else { "404 Not Found" };
            let head = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n"
            );
            if (&conn).write_all(head.as_bytes()).is_err() {
                return;
            }
        }
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
