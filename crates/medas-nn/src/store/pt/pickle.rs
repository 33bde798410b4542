//! A pickle reader for exactly what `torch.save(model.state_dict())` writes (protocol 2, also
//! the protocol-4 opcodes newer Pythons may use): an `OrderedDict` of names to tensors, each
//! rebuilt by `torch._utils._rebuild_tensor_v2` from a storage named by a persistent id
//! `('storage', torch.FloatStorage, key, location, numel)`, plus the `_metadata` attribute.
//!
//! Nothing is imported or called: the only globals accepted are `collections.OrderedDict`,
//! `torch._utils._rebuild_tensor_v2` and the `torch.*Storage` types below, each turned into a
//! value here; any other global or opcode ends the read with an error naming it. Containers
//! share their items (`Rc`), so memo references cannot blow up memory, and are dropped
//! iteratively, so deep nesting cannot overflow the stack.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use burn::tensor::DType;

use super::PtError;

/// The storage types a state_dict's tensors may have, by their name in `torch`.
const STORAGES: &[(&str, DType)] = &[
    ("FloatStorage", DType::F32),
    ("DoubleStorage", DType::F64),
    ("HalfStorage", DType::F16),
    ("BFloat16Storage", DType::BF16),
    ("LongStorage", DType::I64),
    ("IntStorage", DType::I32),
];

/// A storage named by a persistent id: the zip entry `data/KEY` holds its `numel` elements.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageRef {
    pub dtype: DType,
    pub key: String,
    pub numel: u64,
}

/// `_rebuild_tensor_v2(storage, offset, size, stride, ...)`: elements counted, not bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorRef {
    pub storage: Rc<StorageRef>,
    pub offset: u64,
    pub shape: Vec<usize>,
    pub stride: Vec<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Global {
    OrderedDict,
    RebuildTensor,
    Storage(DType),
}

type Dict = Rc<RefCell<Vec<(Value, Value)>>>;

#[derive(Debug, Clone)]
enum Value {
    None,
    /// A bool or a float: read (a tensor's `requires_grad`), never used.
    Bool,
    Int(i64),
    Float,
    Str(Rc<str>),
    Tuple(Rc<Vec<Value>>),
    Dict(Dict),
    Global(Global),
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorRef>),
}

impl Drop for Value {
    fn drop(&mut self) {
        // Moves the items of containers only this value holds onto a list, so a deeply nested
        // value is freed in a loop instead of one recursive drop per level.
        fn take_items(value: &mut Value, into: &mut Vec<Value>) {
            match value {
                Value::Tuple(items) => {
                    if let Some(items) = Rc::get_mut(items) {
                        into.append(items);
                    }
                }
                Value::Dict(items) => {
                    if let Some(items) = Rc::get_mut(items) {
                        into.extend(items.get_mut().drain(..).flat_map(|(k, v)| [k, v]));
                    }
                }
                _ => {}
            }
        }
        let mut pending = Vec::new();
        take_items(self, &mut pending);
        while let Some(mut value) = pending.pop() {
            take_items(&mut value, &mut pending);
        }
    }
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool => "a bool",
            Value::Int(_) => "an int",
            Value::Float => "a float",
            Value::Str(_) => "a string",
            Value::Tuple(_) => "a tuple",
            Value::Dict(_) => "a dict",
            Value::Global(_) => "a global",
            Value::Storage(_) => "a storage",
            Value::Tensor(_) => "a tensor",
        }
    }
}

fn bad(message: impl Into<String>) -> PtError {
    PtError::Pickle(message.into())
}

fn resolve(module: &str, name: &str) -> Result<Global, PtError> {
    match (module, name) {
        ("collections", "OrderedDict") => Ok(Global::OrderedDict),
        ("torch._utils", "_rebuild_tensor_v2") => Ok(Global::RebuildTensor),
        ("torch", _) => STORAGES.iter().find(|(n, _)| *n == name).map(|&(_, dtype)| Global::Storage(dtype)).ok_or_else(|| PtError::Forbidden(format!("{module}.{name}"))),
        _ => Err(PtError::Forbidden(format!("{module}.{name}"))),
    }
}

fn non_negative(value: &Value, what: &str) -> Result<u64, PtError> {
    match value {
        Value::Int(n) if *n >= 0 => Ok(*n as u64),
        other => Err(bad(format!("{what} must be an int >= 0, got {}", other.kind()))),
    }
}

fn sizes(value: &Value, what: &str) -> Result<Vec<usize>, PtError> {
    let Value::Tuple(items) = value else { return Err(bad(format!("{what} must be a tuple, got {}", value.kind()))) };
    items.iter().map(|v| non_negative(v, what).and_then(|n| usize::try_from(n).map_err(|_| bad(format!("{what} {n} is too large"))))).collect()
}

/// `_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])`.
fn rebuild_tensor(args: &[Value]) -> Result<Value, PtError> {
    let [storage, offset, size, stride, _requires_grad, hooks, rest @ ..] = args else {
        return Err(bad(format!("_rebuild_tensor_v2 takes 6 or 7 arguments, got {}", args.len())));
    };
    let Value::Storage(storage) = storage else { return Err(bad(format!("_rebuild_tensor_v2's first argument must be a storage, got {}", storage.kind()))) };
    let (shape, stride) = (sizes(size, "a tensor size")?, sizes(stride, "a tensor stride")?);
    if shape.len() != stride.len() || rest.len() > 1 {
        return Err(bad(format!("_rebuild_tensor_v2: size {shape:?} and stride {stride:?} differ in length, or extra arguments")));
    }
    if !matches!(hooks, Value::Dict(d) if d.borrow().is_empty()) {
        return Err(bad("a tensor with backward hooks cannot be loaded"));
    }
    Ok(Value::Tensor(Rc::new(TensorRef { storage: storage.clone(), offset: non_negative(offset, "a storage offset")?, shape, stride })))
}

fn call(callable: &Value, args: &Value) -> Result<Value, PtError> {
    let Value::Tuple(args) = args else { return Err(bad(format!("REDUCE arguments must be a tuple, got {}", args.kind()))) };
    match callable {
        Value::Global(Global::OrderedDict) if args.is_empty() => Ok(Value::Dict(Dict::default())),
        Value::Global(Global::RebuildTensor) => rebuild_tensor(args),
        Value::Global(global) => Err(bad(format!("{global:?} cannot be called with {} arguments", args.len()))),
        other => Err(bad(format!("REDUCE calls {}", other.kind()))),
    }
}

/// `('storage', torch.XStorage, key, location, numel)`.
fn persistent_storage(pid: &Value) -> Result<Value, PtError> {
    if let Value::Tuple(items) = pid
        && let [Value::Str(tag), Value::Global(Global::Storage(dtype)), Value::Str(key), Value::Str(_location), numel] = items.as_slice()
        && &**tag == "storage"
    {
        let numel = non_negative(numel, "a storage's size")?;
        return Ok(Value::Storage(Rc::new(StorageRef { dtype: *dtype, key: key.to_string(), numel })));
    }
    Err(bad("a persistent id that is not ('storage', torch.*Storage, key, location, numel)"))
}

/// The pickle's bytes with a read position.
struct Cursor<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PtError> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.data.len()).ok_or_else(|| bad(format!("truncated at byte {}", self.at)))?;
        let bytes = &self.data[self.at..end];
        self.at = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], PtError> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }

    fn u8(&mut self) -> Result<u8, PtError> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, PtError> {
        self.array().map(u32::from_le_bytes)
    }

    fn line(&mut self) -> Result<&'a str, PtError> {
        let rest = &self.data[self.at..];
        let len = rest.iter().position(|&b| b == b'\n').ok_or_else(|| bad("a GLOBAL without its newline"))?;
        let line = std::str::from_utf8(&rest[..len]).map_err(|_| bad("a GLOBAL name is not UTF-8"))?;
        self.at += len + 1;
        Ok(line)
    }

    fn string(&mut self, len: usize) -> Result<Value, PtError> {
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes).map(|s| Value::Str(s.into())).map_err(|_| bad("a string is not UTF-8"))
    }
}

/// The pickle machine's stack, marks and memo.
#[derive(Default)]
struct Machine {
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
}

impl Machine {
    fn pop(&mut self) -> Result<Value, PtError> {
        self.stack.pop().ok_or_else(|| bad("the stack is empty"))
    }

    fn top(&self) -> Result<&Value, PtError> {
        self.stack.last().ok_or_else(|| bad("the stack is empty"))
    }

    /// The values pushed since the last MARK.
    fn pop_mark(&mut self) -> Result<Vec<Value>, PtError> {
        let mark = self.marks.pop().ok_or_else(|| bad("no MARK to pop to"))?;
        if mark > self.stack.len() {
            return Err(bad("a MARK above the stack"));
        }
        Ok(self.stack.split_off(mark))
    }

    fn pop_tuple(&mut self, n: usize) -> Result<Value, PtError> {
        if self.stack.len() < n {
            return Err(bad("a TUPLE longer than the stack"));
        }
        let items = self.stack.split_off(self.stack.len() - n);
        Ok(Value::Tuple(Rc::new(items)))
    }

    fn put(&mut self, index: u32) -> Result<(), PtError> {
        let value = self.top()?.clone();
        self.memo.insert(index, value);
        Ok(())
    }

    fn get(&mut self, index: u32) -> Result<(), PtError> {
        let value = self.memo.get(&index).cloned().ok_or_else(|| bad(format!("memo {index} was never stored")))?;
        self.stack.push(value);
        Ok(())
    }

    /// Adds `items` (key, value, key, value, ...) to the dict on top of the stack.
    fn set_items(&mut self, items: Vec<Value>) -> Result<(), PtError> {
        let Value::Dict(dict) = self.top()? else { return Err(bad(format!("SETITEMS on {}", self.top()?.kind()))) };
        if !items.len().is_multiple_of(2) {
            return Err(bad("SETITEMS with an odd number of values"));
        }
        let mut dict = dict.try_borrow_mut().map_err(|_| bad("a dict is being changed twice"))?;
        let mut items = items.into_iter();
        while let (Some(key), Some(value)) = (items.next(), items.next()) {
            dict.push((key, value));
        }
        Ok(())
    }

    /// Runs one opcode; `Ok(true)` at STOP.
    fn step(&mut self, op: u8, input: &mut Cursor) -> Result<bool, PtError> {
        match op {
            0x80 => {
                let protocol = input.u8()?;
                if !(2..=5).contains(&protocol) {
                    return Err(bad(format!("pickle protocol {protocol} (torch.save writes 2)")));
                }
            }
            0x95 => drop(input.array::<8>()?), // FRAME: a length hint
            b'c' => {
                let (module, name) = (input.line()?, input.line()?);
                self.stack.push(Value::Global(resolve(module, name)?));
            }
            0x93 => {
                let (name, module) = (self.pop()?, self.pop()?);
                let (Value::Str(module), Value::Str(name)) = (&module, &name) else { return Err(bad("STACK_GLOBAL without two strings")) };
                self.stack.push(Value::Global(resolve(module, name)?));
            }
            b'q' => self.put(input.u8()?.into())?,
            b'r' => self.put(input.u32()?)?,
            0x94 => self.put(u32::try_from(self.memo.len()).map_err(|_| bad("memo overflow"))?)?,
            b'h' => self.get(input.u8()?.into())?,
            b'j' => self.get(input.u32()?)?,
            b'(' => self.marks.push(self.stack.len()),
            b')' => self.stack.push(Value::Tuple(Rc::default())),
            b't' => {
                let items = self.pop_mark()?;
                self.stack.push(Value::Tuple(Rc::new(items)));
            }
            0x85..=0x87 => {
                let tuple = self.pop_tuple(usize::from(op - 0x84))?;
                self.stack.push(tuple);
            }
            b'}' => self.stack.push(Value::Dict(Dict::default())),
            b's' => {
                let (value, key) = (self.pop()?, self.pop()?);
                self.set_items(vec![key, value])?;
            }
            b'u' => {
                let items = self.pop_mark()?;
                self.set_items(items)?;
            }
            b'X' => {
                let len = input.u32()? as usize;
                let value = input.string(len)?;
                self.stack.push(value);
            }
            0x8c => {
                let len = input.u8()?.into();
                let value = input.string(len)?;
                self.stack.push(value);
            }
            b'J' => self.stack.push(Value::Int(i32::from_le_bytes(input.array()?).into())),
            b'K' => self.stack.push(Value::Int(input.u8()?.into())),
            b'M' => self.stack.push(Value::Int(u16::from_le_bytes(input.array()?).into())),
            0x8a => {
                let len = usize::from(input.u8()?);
                if len > 8 {
                    return Err(bad(format!("an integer of {len} bytes")));
                }
                let bytes = input.take(len)?;
                // Little-endian two's complement, sign-extended from its top byte.
                let fill = if bytes.last().is_some_and(|b| b & 0x80 != 0) { 0xff } else { 0 };
                let mut full = [fill; 8];
                full[..len].copy_from_slice(bytes);
                self.stack.push(Value::Int(i64::from_le_bytes(full)));
            }
            b'G' => {
                input.array::<8>()?;
                self.stack.push(Value::Float);
            }
            0x88 | 0x89 => self.stack.push(Value::Bool),
            b'N' => self.stack.push(Value::None),
            b'R' => {
                let (args, callable) = (self.pop()?, self.pop()?);
                let result = call(&callable, &args)?;
                self.stack.push(result);
            }
            b'b' => {
                // OrderedDict's state (a state_dict's `_metadata`): checked for its kind, unused.
                let state = self.pop()?;
                if !matches!((self.top()?, &state), (Value::Dict(_), Value::Dict(_) | Value::None)) {
                    return Err(bad(format!("BUILD of {} with {}", self.top()?.kind(), state.kind())));
                }
            }
            b'Q' => {
                let pid = self.pop()?;
                self.stack.push(persistent_storage(&pid)?);
            }
            b'.' => return Ok(true),
            other => return Err(bad(format!("opcode 0x{other:02x} at byte {} is not one a state_dict needs", input.at - 1))),
        }
        Ok(false)
    }
}

/// The tensors of a pickled state_dict, by name, in the file's order.
pub fn state_dict(pickle: &[u8]) -> Result<Vec<(String, TensorRef)>, PtError> {
    let mut input = Cursor { data: pickle, at: 0 };
    let mut machine = Machine::default();
    while !machine.step(input.u8()?, &mut input)? {}
    let result = machine.pop()?;
    let Value::Dict(dict) = &result else { return Err(bad("the pickle holds no dict (save model.state_dict())")) };
    let dict = dict.borrow();
    dict.iter()
        .map(|(key, value)| match (key, value) {
            (Value::Str(name), Value::Tensor(tensor)) => Ok((name.to_string(), (**tensor).clone())),
            (Value::Str(name), other) => Err(bad(format!("entry {name} is {}, not a tensor", other.kind()))),
            (other, _) => Err(bad(format!("a key is {}, not a name", other.kind()))),
        })
        .collect()
}
