// The SQL editor of a cell: CodeMirror 6 with a Flink SQL dialect,
// completion of keywords, functions and the live catalog, Ctrl/Cmd+Enter
// to run, and the server's errors marked at their line and column.

import { EditorView, basicSetup } from "codemirror";
import { keymap } from "@codemirror/view";
import { Compartment, EditorState, Prec } from "@codemirror/state";
import { sql, SQLDialect, type SQLNamespace } from "@codemirror/lang-sql";
import { completeFromList } from "@codemirror/autocomplete";
import { setDiagnostics } from "@codemirror/lint";

const KEYWORDS =
  "add after all alter analyze and any array as asc at begin between both buckets by cascade case cast catalog catalogs " +
  "column columns comment compute create cross cube cumulate current current_catalog current_database database databases default " +
  "define delete desc describe descriptor distinct distributed drop else end enforced escape except excluding execute exists explain " +
  "extended false fetch filter first following for from full function functions grouping group having hop if ilike in including " +
  "inner insert intersect interval into is join jar key last lateral leading left like limit local match_recognize matches measures " +
  "minus modify natural next not null nulls of offset on one only option options or order ordinal over overwrite overwriting " +
  "partition partitioned past pattern per permute preceding primary range recognize rename replace reset right rollup row rows " +
  "running second select session set sets show skip statement subset system_time system_user table tables tablesample temporary " +
  "then to trailing true tumble unbounded union unique unnest update use using values view views virtual watermark watermarks " +
  "when where window with within without";

const TYPES =
  "bigint binary boolean bytes char character date dec decimal double float int integer interval map multiset null numeric raw " +
  "real row smallint string time timestamp timestamp_ltz tinyint varbinary varchar variant year month day hour minute second zone";

/** Flink's dialect: backquoted identifiers, `''` in strings, `--` and
 * block comments. */
export const FLINK_SQL = SQLDialect.define({
  keywords: KEYWORDS,
  types: TYPES,
  identifierQuotes: "`",
  backslashEscapes: false,
  doubleQuotedStrings: false,
  operatorChars: "*+-%<>!=&|/~^",
  caseInsensitiveIdentifiers: true,
});

export interface EditorHooks {
  onRun: () => void;
  onChange: (text: string) => void;
}

/** What completion knows: the catalog's tables (catalog → database →
 * table → columns), the defaults, and the functions `SHOW FUNCTIONS`
 * listed. */
export interface Completions {
  schema: SQLNamespace;
  catalog?: string;
  database?: string;
  functions: string[];
}

export class SqlEditor {
  readonly view: EditorView;
  private language = new Compartment();
  private hasError = false;

  constructor(parent: HTMLElement, text: string, hooks: EditorHooks, completions: Completions) {
    this.view = new EditorView({
      parent,
      state: EditorState.create({
        doc: text,
        extensions: [
          Prec.highest(
            keymap.of([
              {
                key: "Mod-Enter",
                run: () => {
                  hooks.onRun();
                  return true;
                },
              },
            ]),
          ),
          basicSetup,
          this.language.of(this.languageFor(completions)),
          EditorView.lineWrapping,
          EditorView.updateListener.of((u) => {
            if (u.docChanged) {
              // An edit clears the marked error (after this update).
              if (this.hasError) queueMicrotask(() => this.clearError());
              hooks.onChange(u.state.doc.toString());
            }
          }),
          EditorView.contentAttributes.of({ "aria-label": "SQL" }),
        ],
      }),
    });
  }

  private languageFor(c: Completions) {
    // lang-sql's default schema is one level: the database.
    const defaultSchema = c.database || undefined;
    const lang = sql({
      dialect: FLINK_SQL,
      schema: c.schema,
      defaultSchema,
      upperCaseKeywords: true,
    });
    const functions = FLINK_SQL.language.data.of({
      autocomplete: completeFromList(c.functions.map((f) => ({ label: f, type: "function", boost: -1 }))),
    });
    return [lang, functions];
  }

  setCompletions(c: Completions): void {
    this.view.dispatch({ effects: this.language.reconfigure(this.languageFor(c)) });
  }

  text(): string {
    return this.view.state.doc.toString();
  }

  /** Marks an error at 1-based `line` and `column` (or the whole text
   * when the server gave no position). */
  showError(message: string, line?: number, column?: number): void {
    const doc = this.view.state.doc;
    let from = 0;
    let to = doc.length;
    if (line && line >= 1 && line <= doc.lines) {
      const l = doc.line(line);
      from = Math.min(l.to, l.from + Math.max(0, (column ?? 1) - 1));
      const word = /^[\w`'.]+/.exec(doc.sliceString(from, l.to));
      to = Math.max(from + 1, from + (word ? word[0].length : 1));
      to = Math.min(to, doc.length);
      if (from >= to) from = Math.max(0, to - 1);
    }
    this.hasError = true;
    this.view.dispatch(
      setDiagnostics(this.view.state, [{ from, to, severity: "error", message }]),
    );
  }

  clearError(): void {
    this.hasError = false;
    this.view.dispatch(setDiagnostics(this.view.state, []));
  }

  focus(): void {
    this.view.focus();
  }
}
