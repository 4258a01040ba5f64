// Parses LogQL expressions with @grafana/lezer-logql, the grammar Grafana's Loki query editor uses.
// stdin: a JSON array of expressions. stdout: a JSON array, one {expr, error} per expression,
// where error is null or says where the first syntax error is.
import { parser } from "@grafana/lezer-logql";

const input = JSON.parse(await new Promise((resolve) => {
  let text = "";
  process.stdin.on("data", (chunk) => (text += chunk));
  process.stdin.on("end", () => resolve(text));
}));

const results = input.map((expr) => {
  const tree = parser.parse(expr);
  let error = null;
  tree.iterate({
    enter(node) {
      if (error === null && node.type.isError) {
        error = `syntax error at ${node.from}: ${JSON.stringify(expr.slice(node.from, node.from + 20))}`;
      }
    },
  });
  if (error === null && tree.topNode.firstChild?.name !== "Expr") {
    error = `not a LogQL expression (top node ${tree.topNode.firstChild?.name})`;
  }
  return { expr, error };
});
process.stdout.write(JSON.stringify(results));
