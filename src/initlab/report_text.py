"""The words of the demo's page, in English and in Hebrew (the chapter's own language).

Pure data: ``TEXT[lang][key]`` is an HTML template whose ``{placeholders}`` :mod:`initlab.report`
fills with numbers and figures that are already escaped and marked left-to-right.
"""

TEXT = {
    "en": {
        "title": "initlab demo: parameter initialization",
        "verdict": """<b>Verdict.</b> On the same data and seed, the {net} {act} network trained from
<b>PyTorch's default</b> ({default_acc} test accuracy), from <b>Xavier</b> ({xavier_acc}) and from
<b>He</b> ({he_acc}). From a <b>constant</b> it behaved like a single neuron ({const_acc}; a straight
line, logistic regression, gets {baseline}). With weights too <b>small</b> the loss did not move
({small_loss}, chance is {log2}); with weights too <b>large</b> it {large_txt}.""",
        "large_diverged": "diverged: the loss or a parameter became NaN or infinite at step {step}",
        "large_finished": "ended with loss {loss}",
        "s1_title": "1. Why the starting point matters",
        "s1": """Every network below is the same: {net}, {act} activations, trained with {opt}
(learning rate {lr}) for {steps} steps on {n} points of <code>make_moons</code> (noise {noise}), the
same data and the same seed. Only the initial parameters differ, and so does everything that follows.""",
        "s1_caption": """Each panel shows the trained network's probability that a point is black: contour
lines at 0.1, 0.2, ..., 0.9, each labelled; the thick one at 0.5 is the decision boundary.""",
        "s2_title": "2. Symmetry",
        "s2": """With every weight and bias equal to {const_value}, all neurons of a layer compute the
same function, receive the same gradient and take the same step, so they stay equal for ever. After
training, initlab counts the distinct neurons per hidden layer (the <i>effective width</i>):
<b>{const_width}</b> out of {widths}. The deep, wide network is one neuron per layer, and its boundary
is a straight line: test accuracy {const_acc}, against {baseline} for logistic regression.""",
        "s2_precision": """Exact symmetry is a property of exact arithmetic. In float32 the CPU's matrix
kernels may round some output columns differently; plain SGD keeps such differences at the level of
rounding, but Adam divides each gradient by its own running scale and can amplify them until the
symmetry breaks. The figure trains a small {sym_net} tanh network from a constant with both optimizers
in float32 and float64. Effective widths at the end: {sym_widths}.""",
        "s3_title": "3. Requirement 1: break the symmetry",
        "s3": """Random initialization gives every neuron its own starting point. From PyTorch's default
the same network keeps {default_width} distinct neurons and draws a curved boundary (test accuracy
{default_acc}).""",
        "s4_title": "4. Scale: vanishing and exploding",
        "s4": """Random is not enough. With <code>normal(std=0.01)</code> every layer shrinks the signal,
the output is almost the same for every point ({small_signal}), and the gradients reaching the first
layers are tiny: the loss stays at {small_loss} (it starts at log 2 = {log2}), the vanishing gradient. With
<code>normal(std=3)</code> every layer multiplies the signal: the outputs and the gradients are huge,
and training {large_txt}, the exploding gradient.""",
        "s4_inside": """Inside the network, layer by layer (rows) and step by step (columns): with the small
std each layer's output is smaller than the one before and nothing changes over the steps (flat); with
the large std every layer multiplies the output and the gradients by a large factor, until the numbers
overflow.""",
        "s5_title": "5. Rules that keep the scale",
        "s5": """Xavier (Glorot and Bengio 2010) sets {xavier_var}, a compromise between keeping the
forward values ({fwd_var}) and the backward gradients ({bwd_var}) at the same order of magnitude from
layer to layer. He et al. (2015) use {he_var} for ReLU, whose zeros halve the variance at every layer.
Both trained here: {xavier_acc} and {he_acc}.""",
        "s6_title": "6. PyTorch's default",
        "s6": """<code>nn.Linear.reset_parameters()</code> draws weights and biases from {default_rule}.
For the hidden layers of width {hidden0} that is a bound of {bound}.""",
        "s7_title": "7. The exercise: Xavier against the default",
        "s7": """Xavier's bound is {xavier_bound}, drawn with <code>torch.nn.init.uniform_</code>.
Default: test accuracy {default_acc}, 90% reached at step {default_90}. Xavier: {xavier_acc}, 90% at
step {xavier_90}. The full comparison:""",
        "reproduce": "Reproduce",
        "versions": "initlab {initlab}, torch {torch}, Python {python}.",
        "columns": ["scheme", "train accuracy", "test accuracy", "final loss",
                    "step test accuracy first reached 90%", "effective width per hidden layer", "diverged"],
        "of": "of", "never": "never", "no": "no", "at_step": "at step {step}", "na_diverged": "n/a (diverged)",
        "accuracy": {"diverged": "n/a (diverged at step {step})", "flat": "{acc} (flat output: no signal)",
                     "missing": "n/a"},
        "signal": {"none": "no signal", "weak": "a weak signal", "clear": "a signal"},
        "signal_data": "{p} over the data: {verdict}", "signal_grid": "{p} everywhere: {verdict}",
    },
    "he": {
        "title": "initlab: אתחול פרמטרים",
        "verdict": """<b>השורה התחתונה.</b> על אותם נתונים ועם אותו זרע אקראי, הרשת {net} עם אקטיבציות
{act} אומנה בהצלחה מאתחול <b>ברירת המחדל של PyTorch</b> (דיוק {default_acc} על קבוצת המבחן), מאתחול
<b>Xavier</b> ({xavier_acc}) ומאתחול <b>He</b> ({he_acc}). מאתחול <b>קבוע</b> היא התנהגה כמו נוירון
יחיד ({const_acc}; קו ישר, רגרסיה לוגיסטית, מגיע ל-{baseline}). עם משקלים <b>קטנים</b> מדי ההפסד לא
זז ({small_loss}, ההפסד של ניחוש הוא {log2}); עם משקלים <b>גדולים</b> מדי האימון {large_txt}.""",
        "large_diverged": "התבדר: ההפסד או פרמטר הפכו ל-NaN או לאינסוף בצעד {step}",
        "large_finished": "הסתיים בהפסד {loss}",
        "s1_title": "1. למה נקודת ההתחלה חשובה",
        "s1": """כל הרשתות שלהלן זהות: {net}, אקטיבציות {act}, אימון ב-{opt} (קצב למידה {lr}) במשך
{steps} צעדים על {n} נקודות של <code>make_moons</code> (רעש {noise}), אותם נתונים ואותו זרע. רק
הפרמטרים ההתחלתיים שונים, וכך גם כל מה שבא אחריהם.""",
        "s1_caption": """כל לוח מציג את ההסתברות שהרשת המאומנת נותנת לכך שנקודה שחורה: קווי גובה ב-0.1,
0.2, ..., 0.9, כל קו מסומן בהסתברות שלו; הקו העבה ב-0.5 הוא גבול ההחלטה.""",
        "s2_title": "2. סימטריה",
        "s2": """כשכל משקל וכל היסט שווים ל-{const_value}, כל הנוירונים בשכבה מחשבים את אותה פונקציה,
מקבלים את אותו גרדיאנט ומתעדכנים באותו צעד, ולכן הם נשארים זהים לתמיד. אחרי האימון initlab סופרת את
הנוירונים השונים בכל שכבה נסתרת (<i>הרוחב האפקטיבי</i>): <b>{const_width}</b> מתוך {widths}. הרשת
העמוקה והרחבה היא נוירון אחד בכל שכבה, וגבול ההחלטה שלה הוא קו ישר: דיוק {const_acc}, לעומת {baseline}
של רגרסיה לוגיסטית.""",
        "s2_precision": """סימטריה מדויקת היא תכונה של חשבון מדויק. ב-float32 ליבות הכפל של המעבד עשויות
לעגל עמודות שונות בצורה שונה; SGD רגיל משאיר את ההבדלים ברמת שגיאת העיגול, אבל Adam מחלק כל גרדיאנט
בסקאלה הרצה שלו ויכול להגדיל אותם עד שהסימטריה נשברת. האיור מאמן רשת tanh קטנה {sym_net} מאתחול קבוע
בשני האופטימייזרים, ב-float32 וב-float64. הרוחב האפקטיבי בסוף: {sym_widths}.""",
        "s3_title": "3. דרישה 1: שבירת הסימטריה",
        "s3": """אתחול אקראי נותן לכל נוירון נקודת התחלה משלו. מאתחול ברירת המחדל של PyTorch אותה רשת
שומרת על {default_width} נוירונים שונים ומשרטטת גבול מעוקל (דיוק {default_acc}).""",
        "s4_title": "4. סקאלה: גרדיאנט נעלם וגרדיאנט מתפוצץ",
        "s4": """אקראיות לבדה אינה מספיקה. עם <code>normal(std=0.01)</code> כל שכבה מקטינה את האות,
הפלט כמעט זהה לכל נקודה ({small_signal}), והגרדיאנטים שמגיעים לשכבות הראשונות זעירים: ההפסד נשאר {small_loss} (הוא
מתחיל ב-log 2 = {log2}), הגרדיאנט הנעלם. עם <code>normal(std=3)</code> כל שכבה מגדילה את האות: הפלטים
והגרדיאנטים עצומים, והאימון {large_txt}, הגרדיאנט המתפוצץ.""",
        "s4_inside": """בתוך הרשת, שכבה אחר שכבה (שורות) וצעד אחר צעד (עמודות): עם סטיית התקן הקטנה הפלט
של כל שכבה קטן מזה של הקודמת ודבר אינו משתנה לאורך הצעדים (שטוח); עם סטיית התקן הגדולה כל שכבה מכפילה
את הפלט ואת הגרדיאנטים בפקטור גדול, עד שהמספרים גולשים.""",
        "s5_title": "5. כללים ששומרים על הסקאלה",
        "s5": """Xavier (Glorot ו-Bengio, 2010) קובע {xavier_var}, פשרה בין שמירה על ערכי המעבר קדימה
({fwd_var}) לבין שמירה על הגרדיאנטים במעבר אחורה ({bwd_var}) באותו סדר גודל משכבה לשכבה. He ושותפיו
(2015) משתמשים ב-{he_var} עבור ReLU, שהאפסים שלה מחצים את השונות בכל שכבה. שניהם אימנו כאן: {xavier_acc}
ו-{he_acc}.""",
        "s6_title": "6. ברירת המחדל של PyTorch",
        "s6": """<code>nn.Linear.reset_parameters()</code> מגריל משקלים והיסטים מ-{default_rule}. לשכבות
הנסתרות ברוחב {hidden0} זה חסם של {bound}.""",
        "s7_title": "7. התרגיל: Xavier מול ברירת המחדל",
        "s7": """החסם של Xavier הוא {xavier_bound}, בהגרלה עם <code>torch.nn.init.uniform_</code>. ברירת
מחדל: דיוק {default_acc}, 90% הושג בצעד {default_90}. Xavier: {xavier_acc}, 90% בצעד {xavier_90}.
ההשוואה המלאה:""",
        "reproduce": "לשחזור",
        "versions": "initlab {initlab}, torch {torch}, Python {python}.",
        "columns": ["שיטה", "דיוק אימון", "דיוק מבחן", "הפסד סופי", "הצעד שבו דיוק המבחן הגיע ל-90%",
                    "רוחב אפקטיבי לכל שכבה נסתרת", "התבדר"],
        "of": "מתוך", "never": "אף פעם", "no": "לא", "at_step": "בצעד {step}", "na_diverged": "אין (התבדר)",
        "accuracy": {"diverged": "אין (התבדר בצעד {step})", "flat": "{acc} (פלט שטוח: אין אות)", "missing": "אין"},
        "signal": {"none": "אין אות", "weak": "אות חלש", "clear": "יש אות"},
        "signal_data": "{p} על הנתונים: {verdict}", "signal_grid": "{p} בכל מקום: {verdict}",
    },
}
