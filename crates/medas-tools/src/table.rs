//! A small typed table for tool results that are lists rather than images (thresholds, tile
//! coordinates, per-label measurements): named columns, each of numbers (f64) or of text, all
//! of one length. Saved as CSV (a header row, then one line per row) or JSON
//! (`{"columns": [{"name": ..., "values": [...]}, ...]}`, order kept).

use serde::{Deserialize, Serialize};

/// The values of one column.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    Number(Vec<f64>),
    Text(Vec<String>),
}

impl Column {
    pub fn len(&self) -> usize {
        match self {
            Column::Number(values) => values.len(),
            Column::Text(values) => values.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Cell `row` as CSV text: numbers in their shortest exact form, NaN as an empty cell.
    fn cell(&self, row: usize) -> String {
        match self {
            Column::Number(values) if values[row].is_nan() => String::new(),
            Column::Number(values) => values[row].to_string(),
            Column::Text(values) => quote(&values[row]),
        }
    }
}

/// Named columns of equal length, in order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    columns: Vec<(String, Column)>,
}

impl Table {
    pub fn new() -> Table {
        Table::default()
    }

    /// Adds a column; its name must be new and its length that of the columns before it.
    pub fn with_column(mut self, name: &str, column: Column) -> Result<Table, String> {
        if self.column(name).is_some() {
            return Err(format!("the table already has a column {name:?}"));
        }
        if let Some((first, values)) = self.columns.first()
            && values.len() != column.len()
        {
            return Err(format!("column {name:?} has {} values, column {first:?} has {}", column.len(), values.len()));
        }
        self.columns.push((name.to_string(), column));
        Ok(self)
    }

    /// Adds a numeric column (see [`Table::with_column`]).
    pub fn with_numbers(self, name: &str, values: Vec<f64>) -> Result<Table, String> {
        self.with_column(name, Column::Number(values))
    }

    pub fn rows(&self) -> usize {
        self.columns.first().map_or(0, |(_, c)| c.len())
    }

    pub fn columns(&self) -> &[(String, Column)] {
        &self.columns
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|(n, _)| n == name).map(|(_, c)| c)
    }

    /// The values of numeric column `name`.
    pub fn numbers(&self, name: &str) -> Option<&[f64]> {
        match self.column(name)? {
            Column::Number(values) => Some(values),
            Column::Text(_) => None,
        }
    }

    pub fn to_csv(&self) -> String {
        let mut text = self.columns.iter().map(|(n, _)| quote(n)).collect::<Vec<_>>().join(",");
        text.push('\n');
        for row in 0..self.rows() {
            text.push_str(&self.columns.iter().map(|(_, c)| c.cell(row)).collect::<Vec<_>>().join(","));
            text.push('\n');
        }
        text
    }

    /// Reads CSV with a header row. A column is numeric when every non-empty cell parses as a
    /// number (empty cells become NaN), text otherwise.
    pub fn from_csv(text: &str) -> Result<Table, String> {
        let mut lines = text.lines().filter(|line| !line.trim().is_empty());
        let header = split_csv_line(lines.next().ok_or("the CSV text is empty (no header row)")?)?;
        let mut cells: Vec<Vec<String>> = vec![Vec::new(); header.len()];
        for (number, line) in lines.enumerate() {
            let row = split_csv_line(line)?;
            if row.len() != header.len() {
                return Err(format!("CSV row {} has {} cells, the header has {}", number + 1, row.len(), header.len()));
            }
            cells.iter_mut().zip(row).for_each(|(column, cell)| column.push(cell));
        }
        header.iter().zip(cells).try_fold(Table::new(), |table, (name, column)| table.with_column(name, typed(column)))
    }

    pub fn to_json(&self) -> serde_json::Value {
        let columns = self
            .columns
            .iter()
            .map(|(name, column)| {
                let values = match column {
                    Column::Number(v) => JsonValues::Number(v.iter().map(|x| x.is_finite().then_some(*x)).collect()),
                    Column::Text(v) => JsonValues::Text(v.clone()),
                };
                JsonColumn { name: name.clone(), values }
            })
            .collect();
        serde_json::to_value(JsonTable { columns }).expect("tables serialise")
    }

    /// Reads the JSON form of [`Table::to_json`] (null numbers become NaN).
    pub fn from_json(text: &str) -> Result<Table, String> {
        let parsed: JsonTable = serde_json::from_str(text).map_err(|e| format!("not a table in JSON form: {e}"))?;
        parsed.columns.into_iter().try_fold(Table::new(), |table, column| {
            let values = match column.values {
                JsonValues::Number(v) => Column::Number(v.into_iter().map(|x| x.unwrap_or(f64::NAN)).collect()),
                JsonValues::Text(v) => Column::Text(v),
            };
            table.with_column(&column.name, values)
        })
    }
}

#[derive(Serialize, Deserialize)]
struct JsonTable {
    columns: Vec<JsonColumn>,
}

#[derive(Serialize, Deserialize)]
struct JsonColumn {
    name: String,
    values: JsonValues,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum JsonValues {
    Number(Vec<Option<f64>>),
    Text(Vec<String>),
}

fn typed(cells: Vec<String>) -> Column {
    let parse = |cell: &String| if cell.trim().is_empty() { Some(f64::NAN) } else { cell.trim().parse::<f64>().ok() };
    match cells.iter().map(parse).collect::<Option<Vec<f64>>>() {
        Some(numbers) => Column::Number(numbers),
        None => Column::Text(cells),
    }
}

/// Quotes a CSV cell when it holds a separator, a quote or a line break.
fn quote(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text.to_string() }
}

/// Splits one CSV line into cells, honouring double-quoted cells with doubled quotes inside.
fn split_csv_line(line: &str) -> Result<Vec<String>, String> {
    let mut cells = vec![String::new()];
    let mut chars = line.trim_end_matches('\r').chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        let cell = cells.last_mut().expect("one cell at least");
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cell.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if cell.is_empty() => quoted = true,
            (',', false) => cells.push(String::new()),
            (c, _) => cell.push(c),
        }
    }
    if quoted { Err(format!("unterminated quote in CSV line {line:?}")) } else { Ok(cells) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        Table::new()
            .with_numbers("x", vec![1.0, 0.1 + 0.2, f64::NAN])
            .and_then(|t| t.with_column("name", Column::Text(vec!["a,b".into(), "say \"hi\"".into(), String::new()])))
            .unwrap()
    }

    #[test]
    fn csv_and_json_round_trip_exactly() {
        let table = sample();
        let again = Table::from_csv(&table.to_csv()).unwrap();
        assert_eq!(again.column("name"), table.column("name"));
        let x = again.numbers("x").unwrap();
        assert_eq!((x[0], x[1]), (1.0, 0.1 + 0.2));
        assert!(x[2].is_nan());
        let from_json = Table::from_json(&table.to_json().to_string()).unwrap();
        assert_eq!(from_json.columns()[1], table.columns()[1]);
        assert!(from_json.numbers("x").unwrap()[2].is_nan());
        assert_eq!(from_json.numbers("x").unwrap()[1], 0.1 + 0.2);
    }

    #[test]
    fn columns_must_agree() {
        let error = sample().with_numbers("y", vec![1.0]).unwrap_err();
        assert_eq!(error, "column \"y\" has 1 values, column \"x\" has 3");
        assert_eq!(sample().with_numbers("x", vec![0.0; 3]).unwrap_err(), "the table already has a column \"x\"");
        assert_eq!(Table::from_csv("a,b\n1\n").unwrap_err(), "CSV row 1 has 1 cells, the header has 2");
    }
}
