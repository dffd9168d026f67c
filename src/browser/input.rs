//! Input like a hand, through CDP's `Input` domain (events the page sees as trusted, from
//! the browser's own input pipeline). With `human` on (the `anti_detection` flag), the
//! pointer travels a curved path to a point inside the element over ≥ 150 ms, a button is
//! held 50–150 ms, the wheel scrolls in notches, keys are held a moment; off, the same
//! events are sent at once.

use std::cell::Cell;
use std::f64::consts::PI;
use std::time::Duration;

use chromiumoxide::cdp::browser_protocol::input::{
    DispatchKeyEventParams, DispatchKeyEventType, DispatchMouseEventParams,
    DispatchMouseEventPointerType, DispatchMouseEventType, MouseButton,
};
use chromiumoxide::Page;
use rand::Rng;

/// The modifier bit CDP uses for Control.
const CTRL: i64 = 2;

/// The `deltaY` of one wheel notch, as a mouse on Linux reports it.
pub const NOTCH: f64 = 100.0;

/// The pointer and keyboard of one run's page.
pub struct Hand {
    human: bool,
    at: Cell<Option<(f64, f64)>>,
}

/// Where an element is on the screen (CSS pixels of the viewport) and how big the viewport is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
    pub vw: f64,
    pub vh: f64,
}

impl Rect {
    /// The element's middle is inside the viewport.
    pub fn in_view(&self) -> bool {
        let (cx, cy) = (self.x + self.w / 2.0, self.y + self.h / 2.0);
        cx >= 0.0 && cy >= 0.0 && cx < self.vw && cy < self.vh
    }

    /// How far the page must scroll down (negative: up) to bring the element's middle to
    /// the viewport's middle.
    pub fn offset_y(&self) -> f64 {
        self.y + self.h / 2.0 - self.vh / 2.0
    }
}

fn mouse(kind: DispatchMouseEventType, (x, y): (f64, f64)) -> DispatchMouseEventParams {
    let mut p = DispatchMouseEventParams::new(kind, x, y);
    p.pointer_type = Some(DispatchMouseEventPointerType::Mouse);
    p
}

/// `t` in 0..=1 eased in and out (slow start, slow end, as an arm moves).
fn ease(t: f64) -> f64 {
    0.5 - 0.5 * (PI * t).cos()
}

/// Points of a curved path from `a` to `b` (a cubic Bézier whose control points sit off the
/// straight line by a random amount), `n` of them, the last exactly `b`.
pub fn path(a: (f64, f64), b: (f64, f64), n: usize, rng: &mut impl Rng) -> Vec<(f64, f64)> {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let dist = (dx * dx + dy * dy).sqrt().max(1.0);
    let (nx, ny) = (-dy / dist, dx / dist);
    let bend = |rng: &mut dyn rand::RngCore| rng.gen_range(-0.25..=0.25) * dist.min(400.0);
    let (k1, k2) = (bend(rng), bend(rng));
    let c1 = (a.0 + dx * 0.3 + nx * k1, a.1 + dy * 0.3 + ny * k1);
    let c2 = (a.0 + dx * 0.7 + nx * k2, a.1 + dy * 0.7 + ny * k2);
    (1..=n)
        .map(|i| {
            let t = ease(i as f64 / n as f64);
            let u = 1.0 - t;
            let p = |a: f64, c1: f64, c2: f64, b: f64| {
                u * u * u * a + 3.0 * u * u * t * c1 + 3.0 * u * t * t * c2 + t * t * t * b
            };
            if i == n {
                b
            } else {
                (p(a.0, c1.0, c2.0, b.0), p(a.1, c1.1, c2.1, b.1))
            }
        })
        .collect()
}

impl Hand {
    pub fn new(human: bool) -> Self {
        Self {
            human,
            at: Cell::new(None),
        }
    }

    /// A pause of a random length in `ms` with `human`, none without.
    async fn wait(&self, ms: std::ops::RangeInclusive<u64>) {
        if self.human {
            let d = Duration::from_millis(rand::thread_rng().gen_range(ms));
            tokio::time::sleep(d).await;
        }
    }

    /// Where the pointer is (a place in the upper part of the page before it first moved).
    fn position(&self) -> (f64, f64) {
        self.at.get().unwrap_or_else(|| {
            let mut rng = rand::thread_rng();
            (rng.gen_range(120.0..360.0), rng.gen_range(90.0..260.0))
        })
    }

    /// A point inside the element to aim at: its middle without `human`, else anywhere in
    /// its central part.
    pub fn aim(&self, r: &Rect) -> (f64, f64) {
        if !self.human {
            return (r.x + r.w / 2.0, r.y + r.h / 2.0);
        }
        let mut rng = rand::thread_rng();
        (
            r.x + r.w * rng.gen_range(0.3..0.7),
            r.y + r.h * rng.gen_range(0.3..0.7),
        )
    }

    /// Moves the pointer to `to` (along a path over 150–450 ms with `human`).
    pub async fn move_to(&self, page: &Page, to: (f64, f64)) -> Result<(), String> {
        let from = self.position();
        let points = if self.human {
            let dist = ((to.0 - from.0).powi(2) + (to.1 - from.1).powi(2)).sqrt();
            let n = ((dist / 30.0) as usize).clamp(10, 30);
            path(from, to, n, &mut rand::thread_rng())
        } else {
            vec![to]
        };
        let total = 150.0 + (points.len() as f64 * 10.0).min(300.0);
        let step = total / points.len() as f64;
        for p in points {
            page.execute(mouse(DispatchMouseEventType::MouseMoved, p))
                .await
                .map_err(|e| e.to_string())?;
            self.at.set(Some(p));
            if self.human {
                let jitter = rand::thread_rng().gen_range(0.8..1.2);
                tokio::time::sleep(Duration::from_micros((step * jitter * 1000.0) as u64)).await;
            }
        }
        Ok(())
    }

    /// Moves to `to`, presses the left button, holds it (50–150 ms with `human`), releases.
    pub async fn click(&self, page: &Page, to: (f64, f64)) -> Result<(), String> {
        self.move_to(page, to).await?;
        let button = |kind, buttons| {
            let mut p = mouse(kind, to);
            p.button = Some(MouseButton::Left);
            p.buttons = Some(buttons);
            p.click_count = Some(1);
            p
        };
        page.execute(button(DispatchMouseEventType::MousePressed, 1))
            .await
            .map_err(|e| e.to_string())?;
        // The page measures press → release; CDP's own latency adds a few ms to the pause.
        self.wait(55..=130).await;
        page.execute(button(DispatchMouseEventType::MouseReleased, 0))
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Turns the wheel `notches` notches (down when positive) where the pointer is.
    pub async fn wheel(&self, page: &Page, notches: i32) -> Result<(), String> {
        let at = self.position();
        self.at.set(Some(at));
        for _ in 0..notches.unsigned_abs() {
            let mut p = mouse(DispatchMouseEventType::MouseWheel, at);
            p.delta_x = Some(0.0);
            p.delta_y = Some(NOTCH * f64::from(notches.signum()));
            page.execute(p).await.map_err(|e| e.to_string())?;
            self.wait(35..=90).await;
        }
        Ok(())
    }

    /// Presses and releases one key of a US keyboard by its `key` name ("a", "Enter",
    /// "ArrowDown"), with `modifiers` held and editing `commands` (CDP's, like "selectAll").
    async fn key_with(
        &self,
        page: &Page,
        key: &str,
        modifiers: i64,
        commands: &[&str],
    ) -> Result<(), String> {
        let def = chromiumoxide::keys::get_key_definition(key)
            .ok_or_else(|| format!("no key is called `{key}`"))?;
        let text = def
            .text
            .or((def.key.chars().count() == 1).then_some(def.key))
            .filter(|_| modifiers == 0);
        let event = |kind| {
            let mut p = DispatchKeyEventParams::new(kind);
            p.key = Some(def.key.into());
            p.code = Some(def.code.into());
            p.windows_virtual_key_code = Some(def.key_code);
            p.native_virtual_key_code = Some(def.key_code);
            p.modifiers = (modifiers != 0).then_some(modifiers);
            p
        };
        let mut down = event(if text.is_some() {
            DispatchKeyEventType::KeyDown
        } else {
            DispatchKeyEventType::RawKeyDown
        });
        down.text = text.map(str::to_string);
        down.unmodified_text = text.map(str::to_string);
        if !commands.is_empty() {
            down.commands = Some(commands.iter().map(|c| c.to_string()).collect());
        }
        page.execute(down).await.map_err(|e| e.to_string())?;
        self.wait(25..=80).await;
        page.execute(event(DispatchKeyEventType::KeyUp))
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Presses one key (see `key_with`).
    pub async fn key(&self, page: &Page, key: &str) -> Result<(), String> {
        self.key_with(page, key, 0, &[]).await
    }

    /// Control+A then Backspace: empties the focused field as a person would.
    pub async fn clear_field(&self, page: &Page) -> Result<(), String> {
        let control = |kind| {
            let mut p = DispatchKeyEventParams::new(kind);
            p.key = Some("Control".into());
            p.code = Some("ControlLeft".into());
            p.windows_virtual_key_code = Some(17);
            p.native_virtual_key_code = Some(17);
            p.location = Some(1);
            p
        };
        let mut down = control(DispatchKeyEventType::RawKeyDown);
        down.modifiers = Some(CTRL);
        page.execute(down).await.map_err(|e| e.to_string())?;
        self.wait(40..=110).await;
        self.key_with(page, "a", CTRL, &["selectAll"]).await?;
        page.execute(control(DispatchKeyEventType::KeyUp))
            .await
            .map_err(|e| e.to_string())?;
        self.wait(60..=160).await;
        self.key(page, "Backspace").await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn a_path_ends_at_its_target_without_jumps() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let p = path((10.0, 10.0), (610.0, 410.0), 20, &mut rng);
        assert_eq!(p.len(), 20);
        assert_eq!(*p.last().unwrap(), (610.0, 410.0));
        let mut prev = (10.0, 10.0);
        for q in &p {
            let d = ((q.0 - prev.0).powi(2) + (q.1 - prev.1).powi(2)).sqrt();
            assert!(d < 150.0, "a jump of {d} px");
            prev = *q;
        }
        // Not a straight line: some point is off the diagonal.
        assert!(p
            .iter()
            .any(|q| (q.1 - 10.0 - (q.0 - 10.0) * 400.0 / 600.0).abs() > 1.0));
    }

    #[test]
    fn view_and_offset() {
        let r = Rect {
            x: 10.0,
            y: 1500.0,
            w: 100.0,
            h: 20.0,
            vw: 1280.0,
            vh: 700.0,
        };
        assert!(!r.in_view());
        assert_eq!(r.offset_y(), 1160.0);
        assert!(Rect { y: 300.0, ..r }.in_view());
    }
}
