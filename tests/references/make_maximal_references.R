# lme4 references for maximal crossed random-effects models and constant prior weights.
# Run from the repository root, after tests/references/make_maximal_data.py:
#   Rscript tests/references/make_maximal_references.R
# Writes tests/references/lme4/maximal.json: per model the REML criterion or ML deviance,
# theta, fixed effects, sigma, lme4's singular verdict, the optimiser's evaluations and
# messages, with the versions used.
suppressMessages({library(lme4); library(jsonlite)})
dd <- "tests/data/maximal"
rd <- function(name) {
  d <- read.csv(file.path(dd, paste0(name, ".csv")))
  for (g in c("subj", "item")) d[[g]] <- factor(d[[g]])
  d
}
sleep <- read.csv("tests/data/lme4/sleepstudy.csv")
sleep$Subject <- factor(sleep$Subject)
f3 <- y ~ 1 + x0 + x1 + x2 + (1 + x0 + x1 + x2 | subj) + (1 + x0 + x1 + x2 | item)
f2 <- y ~ 1 + x0 + x1 + (1 + x0 + x1 | subj) + (1 + x0 + x1 | item)
f4 <- y ~ 1 + x0 + x1 + x2 + x3 + (1 + x0 + x1 + x2 + x3 | subj) +
  (1 + x0 + x1 + x2 + x3 | item)
fs <- Reaction ~ Days + (Days | Subject)
cases <- list(
  list(name = "kb07_like_reml", data = "kb07_like", formula = f3, REML = TRUE),
  list(name = "kb07_like_ml", data = "kb07_like", formula = f3, REML = FALSE),
  list(name = "small3_reml", data = "small3", formula = f3, REML = TRUE),
  list(name = "small3_ml", data = "small3", formula = f3, REML = FALSE),
  list(name = "small2w_reml", data = "small2w", formula = f2, REML = TRUE, weights = "w"),
  list(name = "small2w_ml", data = "small2w", formula = f2, REML = FALSE, weights = "w"),
  list(name = "small4_reml", data = "small4", formula = f4, REML = TRUE),
  list(name = "sleep_w5_ml", data = "sleepstudy", formula = fs, REML = FALSE, const_w = 5),
  list(name = "sleep_w10_ml", data = "sleepstudy", formula = fs, REML = FALSE, const_w = 10),
  list(name = "sleep_w100_ml", data = "sleepstudy", formula = fs, REML = FALSE, const_w = 100)
)
out <- list()
for (cs in cases) {
  d <- if (cs$data == "sleepstudy") sleep else rd(cs$data)
  if (!is.null(cs$const_w)) d$w <- rep(cs$const_w, nrow(d))
  wt <- if (!is.null(cs$weights) || !is.null(cs$const_w)) d$w else NULL
  t0 <- proc.time()[["elapsed"]]
  m <- if (is.null(wt)) lmer(cs$formula, d, REML = cs$REML) else
    lmer(cs$formula, d, REML = cs$REML, weights = wt)
  el <- proc.time()[["elapsed"]] - t0
  crit <- if (cs$REML) REMLcrit(m) else deviance(m)
  out[[cs$name]] <- list(
    data = cs$data, formula = paste(deparse(cs$formula, width.cutoff = 500), collapse = ""),
    reml = cs$REML, weights = if (!is.null(cs$const_w)) cs$const_w else
      if (!is.null(cs$weights)) cs$weights else NULL,
    objective = crit, theta = unname(getME(m, "theta")), fixef = as.list(fixef(m)),
    sigma = sigma(m), singular = isSingular(m), feval = m@optinfo$feval,
    messages = unlist(m@optinfo$conv$lme4$messages), seconds = el)
  cat(sprintf("%-16s %.10f  feval %d  %.1f s\n", cs$name, crit, m@optinfo$feval, el))
}
out$versions <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                     Matrix = as.character(packageVersion("Matrix")))
write_json(out, "tests/references/lme4/maximal.json", digits = NA, auto_unbox = TRUE,
           pretty = TRUE, null = "null")
