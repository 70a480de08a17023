// CodeMirror 6 for the editor: Python highlighting, a lint gutter, and
// the platform's validation problems as error markers.
import { EditorView, basicSetup } from "codemirror";
import { python } from "@codemirror/lang-python";
import { lintGutter, setDiagnostics, type Diagnostic } from "@codemirror/lint";
import { EditorState, Prec, type Extension } from "@codemirror/state";
import { keymap } from "@codemirror/view";
import type { ValidationError } from "./gen/gofastapi/v1/apps_pb";

export { EditorView, EditorState };

/** Keys are the editor's own shortcuts, bound in every file. */
export interface Keys {
  save: () => void;
  deploy: () => void;
}

/** newState makes the editing state of one file. */
export function newState(name: string, doc: string, keys: Keys, onChange: () => void, readOnly = false): EditorState {
  const ext: Extension[] = [
    // Before the default keymap, which gives Mod-Enter to insertBlankLine.
    Prec.highest(keymap.of([
      { key: "Mod-s", preventDefault: true, run: () => (keys.save(), true) },
      { key: "Mod-Enter", preventDefault: true, run: () => (keys.deploy(), true) },
    ])),
    basicSetup,
    lintGutter(),
    // Long lines wrap: no sideways scrolling, on a phone least of all.
    EditorView.lineWrapping,
    EditorView.contentAttributes.of({ "aria-label": `Code of ${name}` }),
    EditorView.updateListener.of((u) => {
      if (u.docChanged) onChange();
    }),
  ];
  if (name.endsWith(".py")) ext.push(python());
  if (readOnly) ext.push(EditorState.readOnly.of(true), EditorView.editable.of(false));
  return EditorState.create({ doc, extensions: ext });
}

/** diagnostics places problems of one file in state's document. */
export function diagnostics(state: EditorState, problems: ValidationError[]): Diagnostic[] {
  const doc = state.doc;
  return problems.map((p) => {
    const line = doc.line(Math.min(Math.max(p.line, 1), doc.lines));
    // From the column to the end of the line; a column at the end of the
    // line (a missing ':') marks the line's last character, so the marker
    // stays visible.
    let from = p.column > 0 ? Math.min(line.from + p.column - 1, line.to) : line.from;
    if (from >= line.to) from = Math.max(line.from, line.to - 1);
    return { from, to: line.to, severity: "error", message: p.message, source: "gofastapi" };
  });
}

/** withProblems returns state with problems as its diagnostics. */
export function withProblems(state: EditorState, problems: ValidationError[]): EditorState {
  return state.update(setDiagnostics(state, diagnostics(state, problems))).state;
}

/** showProblems sets problems as the diagnostics of the view's document. */
export function showProblems(view: EditorView, problems: ValidationError[]): void {
  view.dispatch(setDiagnostics(view.state, diagnostics(view.state, problems)));
}

/** goTo puts the cursor at line:column of view and scrolls there. */
export function goTo(view: EditorView, line: number, column: number): void {
  const l = view.state.doc.line(Math.min(Math.max(line, 1), view.state.doc.lines));
  const pos = Math.min(l.from + Math.max(column - 1, 0), l.to);
  view.dispatch({ selection: { anchor: pos }, scrollIntoView: true });
  view.focus();
}
