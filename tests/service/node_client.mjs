// A decision-service client in another language: Node's plain `net` module, no npm packages.
// usage: node node_client.mjs SOCKET  -> prints one JSON array of every response, in order
import net from "node:net";

const requests = [
  {v: 1, id: 1, method: "check", params: {plugin: "demo", request: {action: "fs.read", path: "/srv/secret/key"}}},
  {v: 1, id: 2, method: "check", params: {plugin: "demo", request: {action: "fs.read", path: "/srv/docs/a"}}},
  {v: 1, id: 3, method: "explain", params: {plugin: "demo", request: {action: "fs.read", path: "/srv/secret/key"}}},
  {v: 1, id: 4, method: "call_tool", params: {tool: "demo.echo", args: {text: "from node"}}},
  {v: 2, id: 5, method: "check", params: {}},
  "this is not json",
  {v: 1, id: 7, method: "audit", params: {limit: 3, decision: "deny"}},
];

const sock = net.createConnection(process.argv[2]);
let buffer = "";
const replies = [];
sock.on("connect", () => {
  for (const r of requests) sock.write((typeof r === "string" ? r : JSON.stringify(r)) + "\n");
});
sock.on("data", (chunk) => {
  buffer += chunk.toString("utf8");
  let nl;
  while ((nl = buffer.indexOf("\n")) >= 0) {
    replies.push(JSON.parse(buffer.slice(0, nl)));
    buffer = buffer.slice(nl + 1);
  }
  if (replies.length === requests.length) {
    process.stdout.write(JSON.stringify(replies) + "\n");
    sock.end();
  }
});
sock.on("error", (e) => { console.error(String(e)); process.exit(2); });
setTimeout(() => { console.error("timeout"); process.exit(3); }, 20000).unref();
