//! Where our JavaScript runs: an isolated world of the page's main frame (`Page.
//! createIsolatedWorld`), never the page's own. The page's scripts cannot see a function we
//! call there, nor a global we leave, nor a DOM method they wrapped being called: an isolated
//! world has its own JavaScript objects over the same DOM. It also needs no `Runtime.enable`
//! (the world's context id comes back from the call that creates it), which is what lets an
//! anti-detection session turn the Runtime domain off.

use std::cell::Cell;
use std::time::Duration;

use chromiumoxide::cdp::browser_protocol::page::CreateIsolatedWorldParams;
use chromiumoxide::cdp::js_protocol::runtime::{
    CallArgument, CallFunctionOnParams, ExecutionContextId,
};
use chromiumoxide::Page;
use serde_json::Value;

/// The isolated world of one page, created on first use and again after a navigation
/// destroyed it.
pub struct World<'a> {
    page: &'a Page,
    context: Cell<Option<ExecutionContextId>>,
}

/// What a call failing because the document changed says (the call is then made again).
const GONE: &[&str] = &[
    "Cannot find context",
    "context was destroyed",
    "navigated or closed",
    "No frame for given id",
    "Frame with the given id was not found",
];

impl<'a> World<'a> {
    pub fn new(page: &'a Page) -> Self {
        Self {
            page,
            context: Cell::new(None),
        }
    }

    async fn context(&self) -> Result<ExecutionContextId, String> {
        if let Some(id) = self.context.get() {
            return Ok(id);
        }
        let frame = self
            .page
            .mainframe()
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "the page has no main frame (navigated or closed)".to_string())?;
        let mut params = CreateIsolatedWorldParams::new(frame);
        params.world_name = Some("utility".into());
        let created = self.page.execute(params).await.map_err(|e| e.to_string())?;
        let id = created.result.execution_context_id;
        self.context.set(Some(id));
        Ok(id)
    }

    /// Calls a function declaration with JSON arguments (never spliced into the source) and
    /// returns its (awaited) value. A navigation (a click that submitted a form, a redirect)
    /// destroys the world a call runs in: the call is then made again in the new document,
    /// until the step's own timeout.
    pub async fn call(&self, fun: &str, args: &[Value]) -> Result<Value, String> {
        loop {
            match self.try_call(fun, args).await {
                Ok(v) => return Ok(v),
                Err(text) if GONE.iter().any(|m| text.contains(m)) => {
                    self.context.set(None);
                    // The new document's frame appears once it has committed.
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                Err(text) => return Err(text),
            }
        }
    }

    async fn try_call(&self, fun: &str, args: &[Value]) -> Result<Value, String> {
        let mut params = CallFunctionOnParams::new(fun);
        params.execution_context_id = Some(self.context().await?);
        params.await_promise = Some(true);
        params.return_by_value = Some(true);
        params.arguments = Some(
            args.iter()
                .map(|a| CallArgument::builder().value(a.clone()).build())
                .collect(),
        );
        let r = self
            .page
            .execute(params)
            .await
            .map_err(|e| e.to_string())?
            .result;
        if let Some(ex) = r.exception_details {
            let detail = ex.exception.and_then(|e| e.description).unwrap_or(ex.text);
            return Err(detail);
        }
        Ok(r.result.value.unwrap_or(Value::Null))
    }
}
