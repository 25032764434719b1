//! The little DER the PKI engine needs: a writer for certificates, requests and CRLs, and a
//! strict reader (definite lengths, one-byte tags) for what clients send. Pure functions;
//! nothing here panics on input.

/// Universal tags used here.
pub const INTEGER: u8 = 0x02;
pub const BIT_STRING: u8 = 0x03;
pub const OCTET_STRING: u8 = 0x04;
pub const NULL: u8 = 0x05;
pub const OID: u8 = 0x06;
pub const UTF8_STRING: u8 = 0x0c;
pub const PRINTABLE_STRING: u8 = 0x13;
pub const UTC_TIME: u8 = 0x17;
pub const GENERALIZED_TIME: u8 = 0x18;
pub const SEQUENCE: u8 = 0x30;
pub const SET: u8 = 0x31;
pub const BOOLEAN: u8 = 0x01;

/// Malformed DER (the caller turns it into a 400 with its own wording).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerError(pub &'static str);

pub type DerResult<T> = Result<T, DerError>;

// ---- writer ----

/// One TLV.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = n.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        let len = bytes.get(skip..).unwrap_or_default();
        out.push(0x80 | len.len() as u8);
        out.extend_from_slice(len);
    }
    out.extend_from_slice(content);
    out
}

/// A constructed value of `tag` holding the concatenation of `parts`.
pub fn cons(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    tlv(tag, &parts.concat())
}

pub fn seq(parts: &[&[u8]]) -> Vec<u8> {
    cons(SEQUENCE, parts)
}

/// An INTEGER from unsigned big-endian bytes (leading zeros stripped, a zero added when the
/// high bit is set).
pub fn uint(be: &[u8]) -> Vec<u8> {
    let skip = be.iter().take_while(|b| **b == 0).count();
    let trimmed = be.get(skip..).unwrap_or_default();
    let mut c = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_none_or(|b| b & 0x80 != 0) {
        c.push(0);
    }
    c.extend_from_slice(trimmed);
    tlv(INTEGER, &c)
}

pub fn small_uint(n: u64) -> Vec<u8> {
    uint(&n.to_be_bytes())
}

pub fn boolean(b: bool) -> Vec<u8> {
    tlv(BOOLEAN, &[if b { 0xff } else { 0 }])
}

pub fn null() -> Vec<u8> {
    tlv(NULL, &[])
}

pub fn octets(b: &[u8]) -> Vec<u8> {
    tlv(OCTET_STRING, b)
}

/// A BIT STRING with no unused bits.
pub fn bits(b: &[u8]) -> Vec<u8> {
    let mut c = Vec::with_capacity(b.len() + 1);
    c.push(0);
    c.extend_from_slice(b);
    tlv(BIT_STRING, &c)
}

/// An OBJECT IDENTIFIER from its arcs.
pub fn oid(arcs: &[u64]) -> Vec<u8> {
    let mut c = Vec::new();
    let (a, b) = (
        arcs.first().copied().unwrap_or(0),
        arcs.get(1).copied().unwrap_or(0),
    );
    base128(&mut c, a * 40 + b);
    for arc in arcs.iter().skip(2) {
        base128(&mut c, *arc);
    }
    tlv(OID, &c)
}

fn base128(out: &mut Vec<u8>, mut v: u64) {
    let mut tmp = vec![(v & 0x7f) as u8];
    v >>= 7;
    while v > 0 {
        tmp.push(0x80 | (v & 0x7f) as u8);
        v >>= 7;
    }
    tmp.reverse();
    out.extend_from_slice(&tmp);
}

/// `[n] EXPLICIT` (constructed context tag).
pub fn explicit(n: u8, inner: &[u8]) -> Vec<u8> {
    tlv(0xa0 | n, inner)
}

/// A directory string as Go writes it: PrintableString when every character allows it,
/// UTF8String otherwise.
pub fn dir_string(s: &str) -> Vec<u8> {
    let printable = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b" '()+,-./:=?".contains(&b));
    tlv(
        if printable {
            PRINTABLE_STRING
        } else {
            UTF8_STRING
        },
        s.as_bytes(),
    )
}

/// UTCTime before 2050, GeneralizedTime from then on (RFC 5280 4.1.2.5).
pub fn time(unix: i64) -> Vec<u8> {
    let t =
        time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let (y, mo, d, h, mi, s) = (
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
    );
    if (1950..2050).contains(&y) {
        let s = format!("{:02}{mo:02}{d:02}{h:02}{mi:02}{s:02}Z", y % 100);
        tlv(UTC_TIME, s.as_bytes())
    } else {
        let s = format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}Z");
        tlv(GENERALIZED_TIME, s.as_bytes())
    }
}

// ---- reader ----

/// One parsed element: its tag, its content and the whole encoding.
#[derive(Clone, Copy, Debug)]
pub struct Tlv<'a> {
    pub tag: u8,
    pub content: &'a [u8],
    pub raw: &'a [u8],
}

impl<'a> Tlv<'a> {
    /// The elements inside a constructed value.
    pub fn reader(&self) -> Reader<'a> {
        Reader::new(self.content)
    }
    pub fn expect(self, tag: u8, what: &'static str) -> DerResult<Self> {
        if self.tag == tag {
            Ok(self)
        } else {
            Err(DerError(what))
        }
    }
    /// A BIT STRING's bytes (no unused bits allowed).
    pub fn bit_string(&self) -> DerResult<&'a [u8]> {
        match self.content.split_first() {
            Some((0, rest)) if self.tag == BIT_STRING => Ok(rest),
            _ => Err(DerError("bad bit string")),
        }
    }
    /// An INTEGER's magnitude, leading zero removed.
    pub fn uint_bytes(&self) -> DerResult<&'a [u8]> {
        if self.tag != INTEGER || self.content.is_empty() {
            return Err(DerError("bad integer"));
        }
        let skip = self.content.iter().take_while(|b| **b == 0).count();
        Ok(self.content.get(skip..).unwrap_or_default())
    }
    /// A UTCTime or GeneralizedTime as Unix seconds.
    pub fn time(&self) -> DerResult<i64> {
        let s = std::str::from_utf8(self.content).map_err(|_| DerError("bad time"))?;
        let s = s.strip_suffix('Z').ok_or(DerError("bad time"))?;
        let full = match self.tag {
            UTC_TIME if s.len() == 12 => {
                let yy: i32 = s
                    .get(..2)
                    .and_then(|y| y.parse().ok())
                    .ok_or(DerError("bad time"))?;
                let century = if yy >= 50 { "19" } else { "20" };
                format!("{century}{s}")
            }
            GENERALIZED_TIME if s.len() == 14 => s.to_string(),
            _ => return Err(DerError("bad time")),
        };
        let num = |a: usize, b: usize| -> DerResult<u32> {
            full.get(a..b)
                .and_then(|x| x.parse().ok())
                .ok_or(DerError("bad time"))
        };
        let month = time::Month::try_from(num(4, 6)? as u8).map_err(|_| DerError("bad time"))?;
        let date = time::Date::from_calendar_date(num(0, 4)? as i32, month, num(6, 8)? as u8)
            .map_err(|_| DerError("bad time"))?;
        let t = time::Time::from_hms(num(8, 10)? as u8, num(10, 12)? as u8, num(12, 14)? as u8)
            .map_err(|_| DerError("bad time"))?;
        Ok(time::PrimitiveDateTime::new(date, t)
            .assume_utc()
            .unix_timestamp())
    }
    /// An OBJECT IDENTIFIER's arcs.
    pub fn oid_arcs(&self) -> DerResult<Vec<u64>> {
        if self.tag != OID || self.content.is_empty() {
            return Err(DerError("bad object identifier"));
        }
        let mut arcs = Vec::new();
        let mut v: u64 = 0;
        for b in self.content {
            if v > (u64::MAX >> 7) {
                return Err(DerError("bad object identifier"));
            }
            v = (v << 7) | u64::from(b & 0x7f);
            if b & 0x80 == 0 {
                if arcs.is_empty() {
                    let first = (v / 40).min(2);
                    arcs.push(first);
                    arcs.push(v - first * 40);
                } else {
                    arcs.push(v);
                }
                v = 0;
            }
        }
        Ok(arcs)
    }
}

/// A cursor over concatenated elements.
#[derive(Clone, Copy, Debug)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Reader { rest: b }
    }
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }
    pub fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }
    /// The next element.
    pub fn next(&mut self) -> DerResult<Tlv<'a>> {
        let bad = DerError("truncated or malformed DER");
        let (&tag, after) = self.rest.split_first().ok_or(bad.clone())?;
        if tag & 0x1f == 0x1f {
            return Err(DerError("multi-byte tags are not supported"));
        }
        let (&l0, after) = after.split_first().ok_or(bad.clone())?;
        let (len, after) = if l0 < 0x80 {
            (usize::from(l0), after)
        } else {
            let n = usize::from(l0 & 0x7f);
            if n == 0 || n > 4 {
                return Err(bad);
            }
            let lb = after.get(..n).ok_or(bad.clone())?;
            let len = lb.iter().fold(0usize, |a, b| (a << 8) | usize::from(*b));
            if len < 0x80 || lb.first() == Some(&0) {
                return Err(DerError("non-minimal DER length"));
            }
            (len, after.get(n..).ok_or(bad.clone())?)
        };
        let content = after.get(..len).ok_or(bad.clone())?;
        let header = self.rest.len() - after.len();
        let raw = self.rest.get(..header + len).ok_or(bad)?;
        self.rest = after.get(len..).unwrap_or_default();
        Ok(Tlv { tag, content, raw })
    }
    /// The next element, which must carry `tag`.
    pub fn expect(&mut self, tag: u8, what: &'static str) -> DerResult<Tlv<'a>> {
        self.next()?.expect(tag, what)
    }
    /// The next element if it carries `tag`.
    pub fn optional(&mut self, tag: u8) -> DerResult<Option<Tlv<'a>>> {
        if self.peek_tag() == Some(tag) {
            self.next().map(Some)
        } else {
            Ok(None)
        }
    }
}

/// Parses exactly one element spanning all of `b`.
pub fn parse_one(b: &[u8]) -> DerResult<Tlv<'_>> {
    let mut r = Reader::new(b);
    let t = r.next()?;
    if !r.is_empty() {
        return Err(DerError("trailing data after DER value"));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let o = oid(&[1, 2, 840, 113549, 1, 1, 11]);
        assert_eq!(hex::encode(&o), "06092a864886f70d01010b");
        assert_eq!(
            parse_one(&o).unwrap().oid_arcs().unwrap(),
            vec![1, 2, 840, 113549, 1, 1, 11]
        );
        assert_eq!(uint(&[0x80]), vec![2, 2, 0, 0x80]);
        assert_eq!(uint(&[0, 0, 5]), vec![2, 1, 5]);
        let long = tlv(OCTET_STRING, &[7u8; 300]);
        let t = parse_one(&long).unwrap();
        assert_eq!(t.content.len(), 300);
        for unix in [0i64, 1_700_000_000, 2_600_000_000] {
            assert_eq!(parse_one(&time(unix)).unwrap().time().unwrap(), unix);
        }
        assert_eq!(dir_string("a.example.com")[0], PRINTABLE_STRING);
        assert_eq!(dir_string("a_b")[0], UTF8_STRING);
    }

    #[test]
    fn malformed_input_is_an_error() {
        for b in [
            &[][..],
            &[0x30],
            &[0x30, 0x05, 1],
            &[0x30, 0x81, 0x05],
            &[0x1f, 0, 0],
        ] {
            assert!(parse_one(b).is_err(), "{b:?}");
        }
        assert!(parse_one(&[0x04, 0x01, 0x00, 0x00]).is_err());
    }
}
