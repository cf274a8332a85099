#!/usr/bin/env Rscript
## Reference numbers from R's lme4 / lmerTest for contrasts, ordered factors, subset=,
## na.action = na.exclude, R's coefficient names and lmerTest's ANOVA test cases
## (lmerTest's tests/test_compare_sas.R and tests/test_anova.R) of the mixeff test suite.
##
## Run from the repository root:
##     Rscript tests/references/make_contrast_references.R
## Optional environment variables:
##     MIXEFF_REF_ASLR   "keep" to skip the rerun with address-space randomisation off
##
## Data: tests/data/lmertest/carrots.csv and ham.csv were written from lmerTest 3.1-3's
## own data sets by
##     write.csv(lmerTest::carrots, "tests/data/lmertest/carrots.csv", row.names = FALSE)
##     write.csv(lmerTest::ham, "tests/data/lmertest/ham.csv", row.names = FALSE)
## and are read back here (so R fits exactly the data the tests read); factor columns are
## made with factor() (levels sorted as R sorts them, numerically for numbers).
## tests/data/lmertest/sas101.csv is the small example of lmerTest's test_compare_sas.R.
## cake and sleepstudy come from tests/data/lme4.
##
## Writes tests/references/lme4/contrasts.json: {versions, cases: {name: case}}, each case
##   r_call, kind ("lmer"/"lm"), reml, nobs, objective (REML criterion or deviance; lm:
##   residual sum of squares), sigma, theta, fixef_names, fixef, std_errors, vcov (rows),
##   coef_table (rows: term, Estimate, Std. Error, [df,] t value, Pr(>|t|)),
##   anova ({type1, type2, type3}: lmerTest's Satterthwaite tables, lm: car-free stats
##   anova() for type1 only), messages (of anova type 3, e.g. missing cells),
##   fitted, residuals (data row order; NA -> null for na.exclude).
## Numbers are written with sprintf("%.17g") (every double reads back exactly).

suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(jsonlite)
})

script_path <- local({
  a <- commandArgs(trailingOnly = FALSE)
  f <- sub("^--file=", "", a[grep("^--file=", a)])
  if (length(f)) normalizePath(f[1]) else NA_character_
})
repo_root <- if (!is.na(script_path)) {
  normalizePath(file.path(dirname(script_path), "..", ".."))
} else {
  normalizePath(".")
}
## lme4's Eigen kernels take memory-alignment dependent code paths; rerun once with ASLR
## off so that reruns reproduce the file byte for byte (MIXEFF_REF_ASLR=keep skips this).
if (Sys.getenv("MIXEFF_REF_ASLR") == "" && !is.na(script_path) &&
    nzchar(Sys.which("setarch"))) {
  machine <- Sys.info()[["machine"]]
  ok <- suppressWarnings(system2("setarch", c(machine, "-R", "true"), stdout = FALSE,
                                 stderr = FALSE))
  if (identical(ok, 0L)) {
    Sys.setenv(MIXEFF_REF_ASLR = "off")
    rscript <- shQuote(file.path(R.home("bin"), "Rscript"))
    quit(save = "no", status = system2("setarch", c(machine, "-R", rscript,
                                                    shQuote(script_path))))
  }
}

out_file <- file.path(repo_root, "tests", "references", "lme4", "contrasts.json")
lme4_dir <- file.path(repo_root, "tests", "data", "lme4")
lt_dir <- file.path(repo_root, "tests", "data", "lmertest")

versions <- list(
  aslr = if (Sys.getenv("MIXEFF_REF_ASLR") == "off") "disabled (setarch -R)" else "enabled",
  R = R.version.string,
  lme4 = as.character(packageVersion("lme4")),
  lmerTest = as.character(packageVersion("lmerTest")),
  Matrix = as.character(packageVersion("Matrix"))
)

## ------------------------------------------------------------ JSON text --
num_json <- function(x) {
  x <- as.double(x)
  out <- rep("null", length(x))
  ok <- is.finite(x)
  out[ok] <- sprintf("%.17g", x[ok])
  out
}
to_json <- function(x) {
  if (is.null(x)) return("null")
  if (is.data.frame(x)) stop("convert data frames first")
  if (is.list(x)) {
    nm <- names(x)
    parts <- vapply(x, to_json, "")
    if (is.null(nm)) return(paste0("[", paste(parts, collapse = ","), "]"))
    keys <- vapply(nm, function(k) toJSON(k, auto_unbox = TRUE), "")
    return(paste0("{", paste(paste0(keys, ":", parts), collapse = ","), "}"))
  }
  scalar <- length(x) == 1 && !inherits(x, "AsIs")
  if (is.factor(x)) x <- as.character(x)
  if (is.logical(x) && !all(is.na(x))) {
    s <- ifelse(is.na(x), "null", ifelse(x, "true", "false"))
  } else if (is.numeric(x) || is.logical(x)) {
    s <- num_json(x)
  } else {
    s <- vapply(as.character(x), function(v) {
      if (is.na(v)) "null" else toJSON(v, auto_unbox = TRUE)
    }, "")
  }
  if (scalar) return(s)
  paste0("[", paste(s, collapse = ","), "]")
}
vec <- function(x) I(unname(as.vector(x)))
rows_of <- function(M) lapply(seq_len(nrow(M)), function(i) vec(M[i, ]))
table_rows <- function(tab) {
  tab <- as.data.frame(tab, check.names = FALSE)
  lapply(seq_len(nrow(tab)), function(i) {
    r <- list(term = rownames(tab)[i])
    for (cn in names(tab)) r[[cn]] <- unname(tab[[cn]][i])
    r
  })
}

## ------------------------------------------------------------- the data --
read_data <- function(path, factors) {
  d <- read.csv(path)
  for (f in factors) d[[f]] <- factor(d[[f]])
  d
}
carrots <- read_data(file.path(lt_dir, "carrots.csv"),
                     c("Consumer", "Frequency", "Gender", "Age", "Homesize", "Work",
                       "Income", "Product"))
ham <- read_data(file.path(lt_dir, "ham.csv"),
                 c("Consumer", "Product", "Information", "Gender"))
sas101 <- read_data(file.path(lt_dir, "sas101.csv"), c("a", "b", "f"))
cake <- read_data(file.path(lme4_dir, "cake.csv"), c("replicate", "recipe"))
cake$temperature <- factor(cake$temperature, ordered = TRUE)  # as lme4's own cake
cake_unordered <- cake
cake_unordered$temperature <- factor(cake$temperature, ordered = FALSE)
carrots_ord <- carrots
carrots_ord$Frequency <- factor(carrots$Frequency, ordered = TRUE)
sleepstudy <- read_data(file.path(lme4_dir, "sleepstudy.csv"), "Subject")
## lmerTest's tests/test_anova.R: a 3 x 3 factorial with the diagonal missing
cake4 <- cake_unordered
cake4 <- droplevels(subset(cake4, temperature %in% levels(cake4$temperature)[1:3]))
cake4 <- droplevels(subset(cake4, !((recipe == "A" & temperature == "175") |
                                      (recipe == "B" & temperature == "185") |
                                      (recipe == "C" & temperature == "195"))))
for (nm in c("carrots", "ham", "sas101", "cake", "cake_unordered", "carrots_ord",
             "sleepstudy", "cake4")) assign(nm, get(nm), envir = globalenv())

## -------------------------------------------------------------- the cases --
## name = list(call = R code (text), kind, options = contrasts option or NULL)
SAS <- 'list(Frequency = "contr.SAS", Income = "contr.SAS")'
cases <- list(
  carrots_fi = list(call = "lmer(Preference ~ Frequency*Income + (1|Consumer), data = carrots)"),
  carrots_fi_sas = list(call = paste0("lmer(Preference ~ Frequency*Income + (1|Consumer), ",
                                      "data = carrots, contrasts = ", SAS, ")")),
  carrots_fi_sum = list(call = paste0(
    "lmer(Preference ~ Frequency*Income + (1|Consumer), data = carrots, ",
    "contrasts = list(Frequency = \"contr.sum\", Income = \"contr.sum\"))")),
  carrots_fi_helmert_poly = list(call = paste0(
    "lmer(Preference ~ Frequency*Income + (1|Consumer), data = carrots, ",
    "contrasts = list(Frequency = \"contr.helmert\", Income = \"contr.poly\"))")),
  carrots_sas_big = list(call = paste0(
    "lmer(Preference ~ sens2*Frequency*Income + (1+sens2|Consumer), data = carrots, ",
    "contrasts = ", SAS, ")")),
  carrots_sens2_homesize = list(call = paste0(
    "lmer(Preference ~ sens2*Homesize + (1+sens2|Consumer), data = carrots)")),
  carrots_three_numeric = list(call = paste0(
    "lmer(Preference ~ sens2*Homesize*sens1 + (1|Product), data = carrots)")),
  carrots_no_intercept = list(call = paste0(
    "lmer(Preference ~ 0 + sens2 + Homesize + (1+sens2|Consumer), data = carrots, ",
    "control = lmerControl(optimizer = \"bobyqa\"))")),
  sas101_ab = list(call = "lmer(y ~ a*b + (1|f), data = sas101)"),
  sas101_ba = list(call = "lmer(y ~ b*a + (1|f), data = sas101)"),
  ham_product_age = list(call = "lmer(Informed.liking ~ Product*Age + (1|Consumer), data = ham)"),
  ham_three = list(call = paste0("lmer(Informed.liking ~ Product*Information*Gender ",
                                 "+ (1|Product:Consumer) + (1|Consumer), data = ham)")),
  ## lmerTest's tests/test_anova.R
  cake_temp = list(call = "lmer(angle ~ recipe * temp + (1|recipe:replicate), data = cake)"),
  cake_temp_ml = list(call = paste0("lmer(angle ~ recipe * temp + (1|recipe:replicate), ",
                                    "data = cake, REML = FALSE)")),
  cake_temp_noint = list(call = "lmer(angle ~ 0 + recipe * temp + (1|recipe:replicate), data = cake)"),
  cake_temp_sum = list(call = paste0("lmer(angle ~ recipe * temp + (1|recipe:replicate), ",
                                     "data = cake, contrasts = list(recipe = \"contr.sum\"))")),
  cake_unordered_types = list(call = paste0("lmer(angle ~ recipe * temperature + ",
                                            "(1|recipe:replicate), data = cake_unordered)")),
  sleep_quadratic = list(call = "lmer(Reaction ~ Days + I(Days^2) + (Days | Subject), data = sleepstudy)"),
  cake4_treatment = list(call = "lmer(angle ~ recipe * temperature + (1|recipe:replicate), data = cake4)"),
  cake4_sum_sas = list(call = paste0(
    "lmer(angle ~ recipe * temperature + (1|recipe:replicate), data = cake4, ",
    "contrasts = list(recipe = \"contr.sum\", temperature = \"contr.SAS\"))")),
  cake4_sum_poly = list(call = paste0(
    "lmer(angle ~ recipe * temperature + (1|recipe:replicate), data = cake4, ",
    "contrasts = list(recipe = \"contr.sum\", temperature = \"contr.poly\"))")),
  cake4_helmert_poly = list(call = paste0(
    "lmer(angle ~ recipe * temperature + (1|recipe:replicate), data = cake4, ",
    "contrasts = list(recipe = \"contr.helmert\", temperature = \"contr.poly\"))")),
  cake4_option_sum = list(call = "lmer(angle ~ recipe * temperature + (1|recipe:replicate), data = cake4)",
                          options = c("contr.sum", "contr.poly")),
  ## ordered factors: contr.poly by default
  cake_ordered_reml = list(call = "lmer(angle ~ recipe * temperature + (1|recipe:replicate), data = cake)"),
  cake_ordered_ml = list(call = paste0("lmer(angle ~ recipe * temperature + (1|recipe:replicate), ",
                                       "data = cake, REML = FALSE)")),
  carrots_ordered_ml = list(call = paste0("lmer(Preference ~ Frequency + sens2 + (1|Consumer), ",
                                          "data = carrots_ord, REML = FALSE)")),
  ## contrasts = on lmer and lm, and options(contrasts =)
  cake_contrasts = list(call = paste0(
    "lmer(angle ~ recipe * temperature + (1|recipe:replicate), data = cake_unordered, ",
    "contrasts = list(recipe = \"contr.sum\", temperature = \"contr.helmert\"))")),
  cake_contrasts_sas = list(call = paste0(
    "lmer(angle ~ recipe + temperature + (1|recipe:replicate), data = cake_unordered, ",
    "contrasts = list(recipe = \"contr.SAS\", temperature = \"contr.poly\"))")),
  cake_option_sum = list(call = "lmer(angle ~ recipe * temperature + (1|recipe:replicate), data = cake_unordered)",
                         options = c("contr.sum", "contr.poly")),
  lm_cake_contrasts = list(kind = "lm", call = paste0(
    "lm(angle ~ recipe * temperature, data = cake_unordered, ",
    "contrasts = list(recipe = \"contr.sum\", temperature = \"contr.helmert\"))")),
  lm_cake_ordered = list(kind = "lm", call = "lm(angle ~ recipe + temperature, data = cake)"),
  ## subset = and na.action = na.exclude
  sleep_subset = list(call = paste0("lmer(Reaction ~ Days + (Days|Subject), data = sleepstudy, ",
                                    "subset = Days >= 2)")),
  sleep_subset_subject = list(call = paste0("lmer(Reaction ~ Days + (1|Subject), data = sleepstudy, ",
                                            "subset = Subject != \"308\" & Days < 8)")),
  lm_sleep_subset = list(kind = "lm", call = "lm(Reaction ~ Days, data = sleepstudy, subset = Days >= 2)"),
  carrots_na_exclude = list(call = paste0("lmer(Preference ~ sens2 + Income + (1|Consumer), ",
                                          "data = carrots, na.action = na.exclude)")),
  lm_carrots_na_exclude = list(kind = "lm", call = paste0(
    "lm(Preference ~ sens2 + Income, data = carrots, na.action = na.exclude)")),
  ## R's names of a poly() term
  sleep_poly = list(call = "lmer(Reaction ~ poly(Days, 2) + (1|Subject), data = sleepstudy)")
)

one_case <- function(spec) {
  kind <- if (is.null(spec$kind)) "lmer" else spec$kind
  old <- options(contrasts = if (is.null(spec$options)) c("contr.treatment", "contr.poly")
                 else spec$options)
  on.exit(options(old))
  msgs <- character(0)
  m <- withCallingHandlers(eval(parse(text = spec$call)),
    message = function(e) {
      msgs <<- c(msgs, sub("\n$", "", conditionMessage(e)))
      invokeRestart("muffleMessage")
    })
  out <- list(r_call = spec$call, kind = kind, fit_messages = I(msgs),
              r_options_contrasts = if (is.null(spec$options)) NULL else I(spec$options))
  b <- if (kind == "lm") coef(m) else fixef(m)
  out$fixef_names <- I(names(b))
  out$fixef <- vec(b)
  V <- as.matrix(vcov(m))
  out$vcov <- rows_of(V)
  out$std_errors <- vec(sqrt(diag(V)))
  out$nobs <- nobs(m)
  out$fitted <- vec(fitted(m))
  out$residuals <- vec(residuals(m))
  out$sigma <- sigma(m)
  if (kind == "lm") {
    out$objective <- sum(residuals(m)^2, na.rm = TRUE)
    out$coef_table <- table_rows(coef(summary(m)))
    out$anova <- list(type1 = table_rows(anova(m)))
  } else {
    out$reml <- isREML(m)
    out$objective <- if (isREML(m)) unname(m@devcomp$cmp["REML"]) else deviance(m)
    out$theta <- vec(getME(m, "theta"))
    out$coef_table <- table_rows(coef(summary(m)))
    an <- list()
    amsg <- character(0)
    for (t in 1:3) {
      a <- withCallingHandlers(anova(m, type = t),
        message = function(e) {
          if (t == 3) amsg <<- c(amsg, sub("\n$", "", conditionMessage(e)))
          invokeRestart("muffleMessage")
        })
      an[[paste0("type", t)]] <- table_rows(a)
    }
    out$anova <- an
    out$anova_messages <- I(amsg)
  }
  out
}

res <- list()
for (nm in names(cases)) {
  cat("  ", nm, "\n")
  res[[nm]] <- one_case(cases[[nm]])
}
txt <- prettify(to_json(list(versions = versions, cases = res)), indent = 1)
writeLines(txt, out_file, useBytes = TRUE)
cat(sprintf("wrote %s\n", out_file))
