//! Kafka's primitive types, read and written: fixed-width big-endian integers, strings,
//! arrays and bytes (16/32-bit lengths, -1 for null) and, in flexible versions, their
//! compact forms (unsigned varint N+1, 0 for null) and tagged fields.

pub type Bad = &'static str;

/// A reader over one message. Nothing is allocated from a length on the wire: counts
/// only drive loops, and every element consumes bytes that must be there.
pub struct Rd<'a> {
    pub b: &'a [u8],
    pub flex: bool,
}

impl Rd<'_> {
    pub fn take(&mut self, n: usize) -> Result<&[u8], Bad> {
        if self.b.len() < n {
            return Err("truncated message");
        }
        let (a, b) = self.b.split_at(n);
        self.b = b;
        Ok(a)
    }
    pub fn skip(&mut self, n: usize) -> Result<(), Bad> {
        self.take(n).map(|_| ())
    }
    pub fn i16(&mut self) -> Result<i16, Bad> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    pub fn i32(&mut self) -> Result<i32, Bad> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn uvarint(&mut self) -> Result<u64, Bad> {
        let mut v = 0u64;
        for shift in (0..35).step_by(7) {
            let b = self.take(1)?[0];
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("bad varint")
    }
    /// A length: compact (N+1, 0 for null) or 16/32-bit (-1 for null).
    fn len(&mut self, wide: bool) -> Result<Option<usize>, Bad> {
        if self.flex {
            let n = self.uvarint()?;
            return Ok(n.checked_sub(1).map(|n| n as usize));
        }
        let n = if wide {
            self.i32()?
        } else {
            i32::from(self.i16()?)
        };
        match n {
            -1 => Ok(None),
            n if n >= 0 => Ok(Some(n as usize)),
            _ => Err("bad length"),
        }
    }
    /// A string's bytes (None: null).
    pub fn raw_string(&mut self) -> Result<Option<Vec<u8>>, Bad> {
        match self.len(false)? {
            None => Ok(None),
            Some(n) => Ok(Some(self.take(n)?.to_vec())),
        }
    }
    pub fn string(&mut self) -> Result<Option<String>, Bad> {
        Ok(self
            .raw_string()?
            .map(|s| String::from_utf8_lossy(&s).into_owned()))
    }
    pub fn bytes(&mut self) -> Result<(), Bad> {
        match self.len(true)? {
            None => Ok(()),
            Some(n) => self.skip(n),
        }
    }
    /// A nullable array's element count (None: null).
    pub fn opt_count(&mut self) -> Result<Option<usize>, Bad> {
        let n = self.len(true)?;
        // Each element takes at least one byte.
        if n.is_some_and(|n| n > self.b.len()) {
            return Err("bad array length");
        }
        Ok(n)
    }
    /// An array's element count (null: 0).
    pub fn count(&mut self) -> Result<usize, Bad> {
        Ok(self.opt_count()?.unwrap_or(0))
    }
    /// An array of int32 (null: empty).
    pub fn i32s(&mut self) -> Result<Vec<i32>, Bad> {
        (0..self.count()?).map(|_| self.i32()).collect()
    }
    pub fn tagged(&mut self) -> Result<(), Bad> {
        if self.flex {
            for _ in 0..self.uvarint()? {
                self.uvarint()?;
                let n = self.uvarint()?;
                self.skip(usize::try_from(n).map_err(|_| "bad tagged field")?)?;
            }
        }
        Ok(())
    }
    pub fn uuid(&mut self) -> Result<[u8; 16], Bad> {
        let b = self.take(16)?;
        let mut id = [0; 16];
        id.copy_from_slice(b);
        Ok(id)
    }
}

/// How rules see a topic ID: `topic-id:` and the UUID in its usual form.
pub fn uuid_label(id: &[u8; 16]) -> String {
    let h: String = id.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "topic-id:{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// A writer of one response, flexible (compact) or not.
pub struct Wr {
    pub b: Vec<u8>,
    pub flex: bool,
}

impl Wr {
    /// A response's header (v1, with tagged fields, when flexible).
    pub fn response(correlation: i32, flex: bool) -> Wr {
        let mut w = Wr {
            b: correlation.to_be_bytes().to_vec(),
            flex,
        };
        w.tagged();
        w
    }
    fn uvarint(&mut self, mut n: u64) {
        while n >= 0x80 {
            self.b.push((n as u8) | 0x80);
            n >>= 7;
        }
        self.b.push(n as u8);
    }
    pub fn i8(&mut self, v: i8) {
        self.b.extend_from_slice(&v.to_be_bytes());
    }
    pub fn i16(&mut self, v: i16) {
        self.b.extend_from_slice(&v.to_be_bytes());
    }
    pub fn i32(&mut self, v: i32) {
        self.b.extend_from_slice(&v.to_be_bytes());
    }
    pub fn i64(&mut self, v: i64) {
        self.b.extend_from_slice(&v.to_be_bytes());
    }
    /// An array's count.
    pub fn count(&mut self, n: usize) {
        if self.flex {
            self.uvarint(n as u64 + 1);
        } else {
            self.i32(n as i32);
        }
    }
    pub fn string(&mut self, s: &[u8]) {
        if self.flex {
            self.uvarint(s.len() as u64 + 1);
        } else {
            self.i16(s.len() as i16);
        }
        self.b.extend_from_slice(s);
    }
    pub fn null_string(&mut self) {
        if self.flex {
            self.uvarint(0);
        } else {
            self.i16(-1);
        }
    }
    pub fn opt_string(&mut self, s: Option<&[u8]>) {
        match s {
            Some(s) => self.string(s),
            None => self.null_string(),
        }
    }
    /// Empty bytes (a record set with no records).
    pub fn no_bytes(&mut self) {
        if self.flex {
            self.uvarint(1);
        } else {
            self.i32(0);
        }
    }
    pub fn raw(&mut self, b: &[u8]) {
        self.b.extend_from_slice(b);
    }
    /// No tagged fields (flexible versions only).
    pub fn tagged(&mut self) {
        if self.flex {
            self.b.push(0);
        }
    }
    /// The message with its size in front.
    pub fn finish(self) -> Vec<u8> {
        [(self.b.len() as u32).to_be_bytes().to_vec(), self.b].concat()
    }
}
