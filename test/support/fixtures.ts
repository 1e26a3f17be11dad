/** Data several suites share. */

/** Questions with made-up answers an LM could not know: a test that finds them learned them from demos. */
export const QA: Array<[string, string]> = [
  ["What is the capital of Atlantis?", "Poseidonia"],
  ["What is the capital of Lemuria?", "Mu City"],
  ["What is the capital of El Dorado?", "Manoa"],
  ["What is the capital of Shangri-La?", "Lhasa Vale"],
  ["What is the capital of Avalon?", "Glastonbury"],
  ["What is the capital of Hyperborea?", "Thule"],
];

/** `dspy.Predict("question -> answer").dump_state()`, as an optimizer stores it. */
export const PREDICT_STATE = {
  traces: [],
  train: [],
  demos: [],
  signature: {
    instructions: "Given the fields `question`, produce the fields `answer`.",
    fields: [
      { prefix: "Question:", description: "${question}" },
      { prefix: "Answer:", description: "${answer}" },
    ],
  },
  lm: null,
};
