#!/usr/bin/env Rscript
## lme4 reference fits of R formula habits that mixeff reads as R does (issue 13 item 1/6,
## issue 19 item 1): I(x^2) is a power, TRUE/FALSE, %in%, R's & | !, factor(), poly(raw =
## TRUE), dummy(), splines::bs, as.numeric/as.factor, a bar term without parentheses,
## columns named like Python keywords, a column named Intercept and a column named `1`.
##
## Run from the repository root:
##     Rscript tests/references/make_formula_references.R
## Writes tests/references/formula/formula_dialect.json (numbers with 17 significant
## digits). The derived columns below are recomputed by tests/test_expr.py from the same
## CSV with the same arithmetic.

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

script_path <- local({
  a <- commandArgs(trailingOnly = FALSE)
  f <- sub("^--file=", "", a[grep("^--file=", a)])
  if (length(f)) normalizePath(f[1]) else NA_character_
})
repo_root <- if (!is.na(script_path)) normalizePath(file.path(dirname(script_path), "..", "..")) else normalizePath(".")
data_dir <- file.path(repo_root, "tests", "data", "lme4")

sleep <- read.csv(file.path(data_dir, "sleepstudy.csv"))
sleep$Subject <- factor(sleep$Subject)
## derived columns (the test makes the same ones)
sleep$yield <- sleep$Reaction                 # a response named like a Python keyword
sleep$class <- sleep$Days %% 3                # covariates named like Python keywords
sleep$lambda <- (sleep$Days - 4.5)^2
sleep$Intercept <- (sleep$Days %% 4) - 1.5    # a column named Intercept
sleep[["1"]] <- sqrt(sleep$Days + 1)          # a column named 1
dye <- read.csv(file.path(data_dir, "Dyestuff.csv"))
dye$Batch <- factor(dye$Batch)
cake <- read.csv(file.path(data_dir, "cake.csv"))
cake$recipe <- factor(cake$recipe)
cake$replicate <- factor(cake$replicate)

num <- function(x) I(sprintf("%.17g", x))

fit_one <- function(name, formula, data, REML = TRUE) {
  m <- lmer(as.formula(formula), data = data, REML = REML)
  list(
    name = name,
    r_formula = formula,
    reml = REML,
    objective = num(if (REML) REMLcrit(m) else deviance(m)),
    fixef_names = names(fixef(m)),
    fixef = num(unname(fixef(m))),
    std_errors = num(unname(sqrt(diag(as.matrix(vcov(m)))))),
    theta = num(unname(getME(m, "theta"))),
    sigma = num(sigma(m))
  )
}

models <- list(
  fit_one("power", "Reaction ~ Days + I(Days^2) + (Days | Subject)", sleep),
  fit_one("power_ml", "Reaction ~ Days + I(Days^2) + (Days | Subject)", sleep, REML = FALSE),
  fit_one("power_precedence", "Reaction ~ I(-Days^2/10 + Days) + I(2^-Days * 100) + (1 | Subject)", sleep),
  fit_one("poly_raw", "Reaction ~ poly(Days, 2, raw = TRUE) + (Days | Subject)", sleep),
  fit_one("logic", "Reaction ~ Days + I(Days > 2 & Days < 7) + I(!(Days %in% c(0, 1))) + (1 | Subject)", sleep),
  fit_one("true_false", "Reaction ~ I(Days * TRUE) + I((Days > 4) == FALSE) + (1 | Subject)", sleep),
  fit_one("t_f", "Reaction ~ poly(Days, 2, raw = T) + (Days | Subject)", sleep, REML = F),
  fit_one("factor", "Reaction ~ factor(class) + (1 | Subject)", sleep),
  fit_one("bare_bar", "Yield ~ 1 | Batch", dye),
  fit_one("bare_bar_slope", "Reaction ~ Days | Subject", sleep),
  fit_one("keywords", "yield ~ class + lambda + I(class * lambda) + (1 | Subject)", sleep),
  fit_one("intercept_column", "Reaction ~ Intercept + (1 | Subject)", sleep),
  fit_one("one_column", "Reaction ~ `1` + (1 | Subject)", sleep),
  fit_one("dummy", "angle ~ recipe + (1 | replicate) + (0 + dummy(recipe, \"A\") | replicate)", cake),
  fit_one("splines_bs", "Reaction ~ splines::bs(Days, df = 3) + (1 | Subject)", sleep),
  fit_one("as_calls", "Reaction ~ as.numeric(Days) + as.factor(class) + (1 | Subject)", sleep)
)
names(models) <- vapply(models, function(m) m$name, "")
out <- list(
  generated_by = "tests/references/make_formula_references.R",
  versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4"))),
  models = models
)
dir.create(file.path(repo_root, "tests", "references", "formula"), showWarnings = FALSE)
writeLines(toJSON(out, auto_unbox = TRUE, pretty = TRUE),
           file.path(repo_root, "tests", "references", "formula", "formula_dialect.json"))
cat("wrote tests/references/formula/formula_dialect.json\n")
