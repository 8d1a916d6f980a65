// The product doc's streamExecution, as printed, with two changes so that it runs under Node:
// the URL is absolute (BASE_URL) and the session cookie is sent (COOKIE).
const BASE_URL = process.env.BASE_URL;
const COOKIE = process.env.COOKIE;

async function streamExecution(workflowId, triggerData) {
  const controller = new AbortController();
  const response = await fetch(
    `${BASE_URL}/api/workflows/${workflowId}/execute/stream`,
    {
      method: "POST",
      headers: { "Content-Type": "application/json", Cookie: COOKIE },
      body: JSON.stringify(triggerData ?? {}),
      signal: controller.signal,
    }
  );

  if (!response.ok || !response.body) {
    throw new Error(`Stream failed: ${response.status}`);
  }

  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";

  while (true) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });

    // SSE frames are separated by "\n\n"
    const frames = buffer.split("\n\n");
    buffer = frames.pop() ?? "";

    for (const frame of frames) {
      const eventLine = frame.split("\n").find((l) => l.startsWith("event: "));
      const dataLine = frame.split("\n").find((l) => l.startsWith("data: "));
      if (!eventLine || !dataLine) continue;

      const event = eventLine.slice(7).trim();
      const data = JSON.parse(dataLine.slice(6));

      switch (event) {
        case "node_start":
          console.log("→", data.nodeName);
          break;
        case "node_complete":
          console.log("✓", data.nodeName, `${data.durationMs}ms`);
          break;
        case "complete":
        case "error":
        case "cancelled":
          console.log(event, data);
          return; // stream ends after terminal event
      }
    }
  }
}

await streamExecution(process.env.WORKFLOW_ID, JSON.parse(process.env.TRIGGER_DATA ?? "{}"));
