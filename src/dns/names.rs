//! Conversions between the config model's names, wire-format names and hickory's `Name`.

use hickory_proto::rr::Name as HName;

use crate::config::Name;

/// Lower-case wire form of a model name (`www.example.com.` → `\x03www\x07example\x03com\x00`).
pub(crate) fn to_wire(name: &Name) -> Box<[u8]> {
    let mut out = Vec::with_capacity(name.as_str().len() + 1);
    for label in name.labels() {
        out.push(label.len() as u8);
        out.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
    }
    out.push(0);
    out.into_boxed_slice()
}

/// Hickory's name for a model name.
pub(crate) fn to_hickory(name: &Name) -> HName {
    // Model names are validated (labels ≤ 63, total ≤ 255, host-name characters).
    HName::from_ascii(name.as_str()).unwrap_or_else(|_| HName::root())
}

/// Hickory's name for a wire-format name (case kept).
pub(crate) fn wire_to_hickory(wire: &[u8]) -> HName {
    let labels = WireLabels { wire, at: 0 };
    HName::from_labels(labels).unwrap_or_else(|_| HName::root())
}

/// Printable form of a wire name, for logs and debugging.
pub(crate) fn wire_to_text(wire: &[u8]) -> String {
    let mut s = String::new();
    for label in (WireLabels { wire, at: 0 }) {
        for &b in label {
            if b.is_ascii_graphic() && b != b'.' && b != b'\\' {
                s.push(b as char);
            } else {
                s.push_str(&format!("\\{b:03}"));
            }
        }
        s.push('.');
    }
    if s.is_empty() {
        s.push('.');
    }
    s
}

/// Byte offsets at which each label of a wire name starts, from the leftmost; the last entry is
/// the root label's offset.
pub(crate) fn label_starts(wire: &[u8], out: &mut [u8; 128]) -> usize {
    let mut n = 0;
    let mut at = 0usize;
    while at < wire.len() && n < out.len() {
        out[n] = at as u8;
        n += 1;
        let len = wire[at] as usize;
        if len == 0 {
            break;
        }
        at += len + 1;
    }
    n
}

struct WireLabels<'a> {
    wire: &'a [u8],
    at: usize,
}

impl<'a> Iterator for WireLabels<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let len = *self.wire.get(self.at)? as usize;
        if len == 0 {
            return None;
        }
        let label = self.wire.get(self.at + 1..self.at + 1 + len)?;
        self.at += 1 + len;
        Some(label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let n = Name::parse_absolute("WWW.Example.com.").expect("name");
        let w = to_wire(&n);
        assert_eq!(&*w, b"\x03www\x07example\x03com\x00");
        assert_eq!(wire_to_text(&w), "www.example.com.");
        assert_eq!(wire_to_hickory(b"\x03WwW\x00").to_ascii(), "WwW.");
        let mut starts = [0u8; 128];
        let k = label_starts(&w, &mut starts);
        assert_eq!(&starts[..k], &[0, 4, 12, 16]);
    }
}
