//! Where a MySQL server's reply to one command ends, packet by packet, so that a refusal
//! can follow the replies owed before it. Only the first bytes of each packet are read.

pub const CLIENT_DEPRECATE_EOF: u32 = 1 << 24;
const SERVER_MORE_RESULTS_EXIST: u16 = 0x0008;
const SERVER_STATUS_CURSOR_EXISTS: u16 = 0x0040;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The server's first packet.
    Greeting,
    /// Authentication (after the handshake response, COM_CHANGE_USER): ends with OK/ERR.
    Auth,
    /// One OK, ERR, EOF or string packet.
    Single,
    /// COM_QUERY, COM_STMT_EXECUTE: result sets, chained by SERVER_MORE_RESULTS_EXIST.
    Results,
    /// COM_STMT_PREPARE: OK with parameter and column definitions.
    Prepare,
    /// COM_FIELD_LIST, COM_STMT_FETCH: packets up to an EOF (or ERR).
    UntilEof,
    /// Replies we do not frame (replication streams...).
    Unframed,
}

impl Kind {
    /// The reply a command gets; None: it gets none.
    pub fn of_command(cmd: u8) -> Option<Kind> {
        Some(match cmd {
            // COM_QUIT, COM_STMT_SEND_LONG_DATA, COM_STMT_CLOSE
            0x01 | 0x18 | 0x19 => return None,
            // COM_QUERY, COM_PROCESS_INFO, COM_STMT_EXECUTE
            0x03 | 0x0a | 0x17 => Kind::Results,
            0x04 | 0x1c => Kind::UntilEof,
            0x16 => Kind::Prepare,
            0x11 => Kind::Auth,
            // COM_BINLOG_DUMP, COM_TABLE_DUMP, COM_REGISTER_SLAVE, COM_BINLOG_DUMP_GTID...
            0x12 | 0x13 | 0x15 | 0x1e..=0xff => Kind::Unframed,
            _ => Kind::Single,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Start,
    /// LOCAL INFILE asked: the client sends the file, then the server's OK/ERR.
    Infile,
    Columns(u64),
    ColumnsEof,
    Rows,
    Defs {
        params: u64,
        columns: u64,
    },
    /// An EOF after parameter definitions, then `columns` more.
    ParamsEof {
        columns: u64,
    },
}

#[derive(Debug)]
pub struct Reply {
    pub kind: Kind,
    state: State,
}

/// A length-encoded integer: its value and size.
fn lenenc(b: &[u8]) -> Option<(u64, usize)> {
    let f = *b.first()?;
    let n = match f {
        0..=0xfa => return Some((f as u64, 1)),
        0xfc => 2,
        0xfd => 3,
        0xfe => 8,
        _ => return None,
    };
    let bytes = b.get(1..1 + n)?;
    let mut v = 0u64;
    for (i, x) in bytes.iter().enumerate() {
        v |= (*x as u64) << (8 * i);
    }
    Some((v, 1 + n))
}

/// Status flags of an OK (0x00 or 0xFE header) packet.
fn ok_status(p: &[u8]) -> Option<u16> {
    let (_, a) = lenenc(p.get(1..)?)?;
    let (_, b) = lenenc(p.get(1 + a..)?)?;
    let s = p.get(1 + a + b..3 + a + b)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

impl Reply {
    pub fn new(kind: Kind) -> Reply {
        Reply {
            kind,
            state: State::Start,
        }
    }

    /// One server packet (its first payload bytes `p`, full length `len`): Ok(true) when
    /// it ends the reply, Err when it cannot be framed.
    pub fn packet(&mut self, p: &[u8], len: usize, deprecate_eof: bool) -> Result<bool, ()> {
        let first = p.first().copied();
        let eof = first == Some(0xFE)
            && if deprecate_eof {
                len < 0xFF_FFFF
            } else {
                len < 9
            };
        // The end of a result set: an EOF, or (CLIENT_DEPRECATE_EOF) an OK with 0xFE.
        let end_status = |p: &[u8]| -> Result<u16, ()> {
            if deprecate_eof {
                ok_status(p).ok_or(())
            } else {
                p.get(3..5)
                    .map(|s| u16::from_le_bytes([s[0], s[1]]))
                    .ok_or(())
            }
        };
        let more = |status: u16| status & SERVER_MORE_RESULTS_EXIST != 0;
        match (self.kind, self.state) {
            (Kind::Greeting | Kind::Single, _) => Ok(true),
            (Kind::Unframed, _) => Err(()),
            (Kind::Auth, _) => Ok(matches!(first, Some(0x00 | 0xFF))),
            (_, _) if first == Some(0xFF) => Ok(true),
            (Kind::UntilEof, _) => Ok(eof),
            (Kind::Results, State::Start | State::Infile) => match first {
                Some(0x00) => {
                    let s = ok_status(p).ok_or(())?;
                    self.state = State::Start;
                    Ok(!more(s))
                }
                Some(0xFB) if self.state == State::Start => {
                    self.state = State::Infile;
                    Ok(false)
                }
                _ => {
                    let (n, _) = lenenc(p).ok_or(())?;
                    self.state = if n == 0 {
                        return Err(());
                    } else {
                        State::Columns(n)
                    };
                    Ok(false)
                }
            },
            (Kind::Results, State::Columns(n)) => {
                self.state = match (n, deprecate_eof) {
                    (1, true) => State::Rows,
                    (1, false) => State::ColumnsEof,
                    _ => State::Columns(n - 1),
                };
                Ok(false)
            }
            (Kind::Results, State::ColumnsEof) => {
                if !eof {
                    return Err(());
                }
                // COM_STMT_EXECUTE with a cursor: no rows now, COM_STMT_FETCH asks.
                if end_status(p)? & SERVER_STATUS_CURSOR_EXISTS != 0 {
                    return Ok(true);
                }
                self.state = State::Rows;
                Ok(false)
            }
            (Kind::Results, State::Rows) => {
                if !eof {
                    return Ok(false);
                }
                let s = end_status(p)?;
                self.state = State::Start;
                Ok(!more(s))
            }
            (Kind::Prepare, State::Start) => {
                if first != Some(0x00) {
                    return Err(());
                }
                let g = |i: usize| {
                    p.get(i..i + 2)
                        .map(|b| u16::from_le_bytes([b[0], b[1]]) as u64)
                };
                let (columns, params) = (g(5).ok_or(())?, g(7).ok_or(())?);
                self.state = State::Defs { params, columns };
                self.defs_done(deprecate_eof)
            }
            (Kind::Prepare, State::Defs { params, columns }) => {
                self.state = if params > 0 {
                    if params == 1 && !deprecate_eof {
                        State::ParamsEof { columns }
                    } else {
                        State::Defs {
                            params: params - 1,
                            columns,
                        }
                    }
                } else {
                    State::Defs {
                        params: 0,
                        columns: columns.saturating_sub(1),
                    }
                };
                if columns == 1 && params == 0 && !deprecate_eof {
                    // The last column definition: an EOF follows.
                    self.state = State::ParamsEof { columns: 0 };
                    return Ok(false);
                }
                self.defs_done(deprecate_eof)
            }
            (Kind::Prepare, State::ParamsEof { columns }) => {
                if !eof {
                    return Err(());
                }
                self.state = State::Defs { params: 0, columns };
                Ok(columns == 0)
            }
            _ => Err(()),
        }
    }

    /// After the prepare OK or a definition: is there nothing more to come?
    fn defs_done(&mut self, _deprecate_eof: bool) -> Result<bool, ()> {
        Ok(matches!(
            self.state,
            State::Defs {
                params: 0,
                columns: 0
            }
        ))
    }
}
