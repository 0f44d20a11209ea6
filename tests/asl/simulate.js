// Runs a JSONata state machine definition against scripted AWS answers, with the JSONata library Step
// Functions' query language is, so that the tests see what the runbook and the drill DO (which calls,
// in which order, what they report), not only that their definitions are well formed.
//
//   node simulate.js <definition.json> <scenario.json>   -> prints the run as JSON
//
// scenario: {"input": {...}, "answers": {"<Task Resource>": [answer, ...]}}; each call to a Resource
// takes the next answer (the last one repeats); an answer {"error": "Name", "cause": "text"} fails the
// call. Covered: the states and fields the project's definitions use (Pass, Task with Retry and Catch,
// Choice, Wait (not waited), Parallel, Map INLINE, Succeed, Fail; Arguments, Output, Assign, Items),
// variable scopes as Step Functions has them (inner states read outer variables; their own
// assignments stay inside). Retries happen without waiting.
"use strict";
const fs = require("fs");
const jsonata = require("jsonata");

class StateError extends Error {
  constructor(error, cause) {
    super(`${error}: ${cause}`);
    this.error = error;
    this.cause = cause;
  }
}

const [definitionPath, scenarioPath] = process.argv.slice(2);
const definition = JSON.parse(fs.readFileSync(definitionPath, "utf8"));
const scenario = JSON.parse(fs.readFileSync(scenarioPath, "utf8"));
const calls = [];
const visited = [];
const served = {};
const context = {
  Execution: { Id: "arn:aws:states:us-east-1:123456789012:execution:simulated:1", StartTime: new Date().toISOString() },
};

async function evaluate(template, scope, states) {
  if (typeof template === "string") {
    const match = /^\{%([\s\S]*)%\}$/.exec(template.trim());
    if (!match) return template;
    let value;
    try {
      value = await jsonata(match[1]).evaluate({}, { ...scope, states: { ...states, context } });
    } catch (problem) {
      throw new StateError("States.QueryEvaluationError", `${match[1].trim()}: ${problem.message}`);
    }
    if (value === undefined) throw new StateError("States.QueryEvaluationError", `${match[1].trim()} is undefined`);
    return value;
  }
  if (Array.isArray(template)) return Promise.all(template.map((item) => evaluate(item, scope, states)));
  if (template && typeof template === "object") {
    const out = {};
    for (const [key, value] of Object.entries(template)) out[key] = await evaluate(value, scope, states);
    return out;
  }
  return template;
}

async function assign(state, scope, states) {
  if (!state.Assign) return;
  const values = await evaluate(state.Assign, scope, states); // all evaluated before any is set
  Object.assign(scope, values);
}

function call(resource, args) {
  calls.push({ resource, args });
  const answers = (scenario.answers || {})[resource];
  if (!answers || answers.length === 0) throw new StateError("Simulator.NoAnswer", `no answer for ${resource}`);
  const index = Math.min(served[resource] || 0, answers.length - 1);
  served[resource] = (served[resource] || 0) + 1;
  const answer = answers[index];
  if (answer && answer.error) throw new StateError(answer.error, answer.cause || "");
  return answer;
}

const matches = (names, error) =>
  names.includes("States.ALL") || names.includes(error) || (names.includes("States.TaskFailed") && !error.startsWith("States."));

async function runTask(state, scope, input) {
  const args = await evaluate(state.Arguments || {}, scope, { input });
  for (let attempt = 0; ; attempt++) {
    try {
      return call(state.Resource, args);
    } catch (problem) {
      if (!(problem instanceof StateError)) throw problem;
      const retrier = (state.Retry || []).find((r) => matches(r.ErrorEquals, problem.error));
      if (!retrier || attempt + 1 >= (retrier.MaxAttempts ?? 3) + 1) throw problem;
    }
  }
}

async function runStates(machine, input, scope) {
  let name = machine.StartAt;
  for (;;) {
    const state = machine.States[name];
    if (!state) throw new Error(`no state ${name}`);
    visited.push(name);
    let next;
    let output = input;
    try {
      if (state.Type === "Pass") {
        output = state.Output !== undefined ? await evaluate(state.Output, scope, { input }) : input;
        await assign(state, scope, { input });
      } else if (state.Type === "Task" || state.Type === "Parallel" || state.Type === "Map") {
        let result;
        if (state.Type === "Task") result = await runTask(state, scope, input);
        else if (state.Type === "Parallel")
          result = await Promise.all(state.Branches.map((branch) => runStates(branch, input, { ...scope })));
        else {
          const items = await evaluate(state.Items, scope, { input });
          result = [];
          for (const item of items) result.push(await runStates(state.ItemProcessor, item, { ...scope }));
        }
        output = state.Output !== undefined ? await evaluate(state.Output, scope, { input, result }) : result;
        await assign(state, scope, { input, result });
      } else if (state.Type === "Choice") {
        next = state.Default;
        for (const choice of state.Choices) {
          if ((await evaluate(choice.Condition, scope, { input })) === true) {
            next = choice.Next;
            break;
          }
        }
        if (!next) throw new StateError("States.NoChoiceMatched", name);
      } else if (state.Type === "Wait") {
        // not waited: the scripted answers stand for the passing time
      } else if (state.Type === "Succeed") {
        return input;
      } else if (state.Type === "Fail") {
        throw new StateError(state.Error, state.Cause);
      } else {
        throw new Error(`the simulator does not cover ${state.Type}`);
      }
    } catch (problem) {
      if (!(problem instanceof StateError) || state.Type === "Fail") throw problem;
      const catcher = (state.Catch || []).find((c) => matches(c.ErrorEquals, problem.error));
      if (!catcher) throw problem;
      const errorOutput = { Error: problem.error, Cause: problem.cause };
      await assign(catcher, scope, { input, errorOutput });
      input = catcher.Output !== undefined ? await evaluate(catcher.Output, scope, { input, errorOutput }) : errorOutput;
      name = catcher.Next;
      continue;
    }
    if (state.End) return output;
    input = output;
    name = next || state.Next;
  }
}

runStates(definition, scenario.input || {}, {})
  .then((output) => console.log(JSON.stringify({ status: "SUCCEEDED", output, calls, visited })))
  .catch((problem) => {
    if (!(problem instanceof StateError)) throw problem;
    console.log(JSON.stringify({ status: "FAILED", error: problem.error, cause: problem.cause, calls, visited }));
  });
