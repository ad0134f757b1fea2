// RFC 4180 CSV, as the server reads it: a leading BOM is dropped, CRLF or LF ends a record, quoted fields may
// hold commas, quotes ("") and line breaks. Rows are numbered as a spreadsheet shows them (the header is row 1,
// blank lines count), so they match the row numbers the server reports.
export function parseCSV(text) {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const records = [];
  let fields = [], field = '', quoted = false, wasQuoted = false, number = 0, i = 0;
  const endField = () => { fields.push(field); field = ''; wasQuoted = false; };
  const endRecord = () => {
    const blank = fields.length === 0 && field === '' && !wasQuoted;
    endField();
    number += 1;
    if (!blank) records.push({ number, fields });
    fields = [];
  };
  while (i < text.length) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') { field += '"'; i += 2; continue; }
        quoted = false;
      } else field += c;
      i += 1;
      continue;
    }
    if (c === '"' && field === '') { quoted = true; wasQuoted = true; }
    else if (c === ',') endField();
    else if (c === '\r' && text[i + 1] === '\n') { endRecord(); i += 1; }
    else if (c === '\n' || c === '\r') endRecord();
    else field += c;
    i += 1;
  }
  if (field !== '' || fields.length > 0 || wasQuoted) endRecord();
  if (records.length === 0) return { header: [], rows: [] };
  const [head, ...rest] = records;
  const offset = head.number - 1;
  return {
    header: head.fields.map((name) => name.trim()),
    rows: rest.map((r) => ({ number: r.number - offset, fields: r.fields })),
  };
}
